// The pipeline editor: CodeMirror 6 over the form's textarea.
//
// Progressive enhancement: the textarea stays the form field (without this
// script the page is a plain form). Here the textarea is hidden and kept in
// step with the editor, the server's check (htmx, as before) turns into
// inline diagnostics on the lines it names, completion comes from the JSON
// Schema the server publishes (/api/v1/schema/definition.json) plus the
// user's usable connections, and saving a change first shows a side-by-side
// diff against the current version.
import { EditorView, basicSetup } from "codemirror";
import { Compartment, EditorState } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { indentWithTab } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { json } from "@codemirror/lang-json";
import { setDiagnostics, lintGutter } from "@codemirror/lint";
import { autocompletion } from "@codemirror/autocomplete";
import { MergeView } from "@codemirror/merge";

const SCHEMA_URL = "/api/v1/schema/definition.json";

function readJson(id, fallback) {
  const el = document.getElementById(id);
  if (!el) return fallback;
  try { return JSON.parse(el.textContent); } catch (e) { return fallback; }
}

// ---------------------------------------------------------------- schema

let schema = null;
function loadSchema() {
  if (schema) return Promise.resolve(schema);
  return fetch(SCHEMA_URL, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((s) => { schema = s; return s; })
    .catch(() => null);
}

function deref(s) {
  let guard = 0;
  while (s && s.$ref && guard++ < 10) {
    const parts = s.$ref.replace(/^#\//, "").split("/");
    let t = schema;
    for (const p of parts) t = t && t[p];
    s = t;
  }
  return s || {};
}

// The schemas a value may match (oneOf/anyOf alternatives, allOf and
// if/then branches); a task's branch is chosen by its type when known.
function alternatives(s, taskType) {
  s = deref(s);
  const out = [s];
  for (const k of ["oneOf", "anyOf"]) for (const alt of s[k] || []) out.push(...alternatives(alt, taskType));
  for (const part of s.allOf || []) {
    const cond = part.if && part.if.properties && part.if.properties.type;
    if (cond && cond.const !== undefined) {
      if (!taskType || cond.const === taskType) out.push(...alternatives(part.then, taskType));
    } else out.push(...alternatives(part, taskType));
  }
  return out;
}

function child(s, seg, taskType) {
  const found = [];
  for (const alt of alternatives(s, taskType)) {
    if (seg === "[]") { if (alt.items) found.push(alt.items); }
    else if (alt.properties && alt.properties[seg]) found.push(alt.properties[seg]);
  }
  return found.length ? { anyOf: found } : null;
}

function resolve(path, taskType) {
  let s = schema;
  for (const seg of path) { s = s && child(s, seg, taskType); if (!s) return null; }
  return s;
}

function keysOf(s, taskType) {
  const keys = new Map();
  for (const alt of alternatives(s, taskType)) {
    for (const [k, v] of Object.entries(alt.properties || {})) if (!keys.has(k)) keys.set(k, deref(v).description || "");
  }
  return keys;
}

function valuesOf(s, taskType) {
  const values = [];
  for (const alt of alternatives(s, taskType)) {
    for (const v of alt.enum || []) values.push(v);
    if (alt.const !== undefined) values.push(alt.const);
    for (const v of alt.examples || []) values.push(v);
  }
  return Array.from(new Set(values.filter((v) => typeof v === "string")));
}

// ---------------------------------------------------------------- YAML context

const LINE = /^(\s*)(-\s+)?(?:(["']?)([\w$.-]+)\3\s*:(?:\s|$))?/;

// The path of keys ("[]" for a list item) that holds the key on line
// ``lineNo``, from the indentation above it, and the type of the task it is in.
function yamlContext(doc, lineNo) {
  const m = LINE.exec(doc.line(lineNo).text);
  let col = m[1].length + (m[2] ? m[2].length : 0);
  let allowEqual = false; // a key at the same column may hold a compact list ("tasks:\n- name")
  const path = [];
  const items = []; // [line, column] of each enclosing list item, innermost first
  if (m[2]) { path.unshift("[]"); col = m[1].length; allowEqual = true; items.push([lineNo, col]); }
  for (let i = lineNo - 1; i >= 1 && (col > 0 || allowEqual); i--) {
    const t = doc.line(i).text;
    if (!t.trim() || /^\s*#/.test(t)) continue;
    const lm = LINE.exec(t);
    const indent = lm[1].length;
    const keyCol = indent + (lm[2] ? lm[2].length : 0);
    if (lm[2] && keyCol === col && !allowEqual) {
      path.unshift("[]"); col = indent; allowEqual = true; items.push([i, indent]);
    } else if (lm[4] && (keyCol < col || (allowEqual && keyCol === col && !lm[2]))) {
      path.unshift(lm[4]); col = keyCol; allowEqual = false;
      if (lm[2]) { path.unshift("[]"); col = indent; allowEqual = true; items.push([i, indent]); }
    }
  }
  const task = path[0] === "tasks" && path[1] === "[]" && items.length ? items[items.length - 1] : null;
  return { path, taskType: task ? itemType(doc, task[0], task[1]) : null };
}

// The ``type:`` of the list item that starts on ``start`` at column ``col``.
function itemType(doc, start, col) {
  for (let i = start; i <= doc.lines; i++) {
    const t = doc.line(i).text;
    if (i > start && t.trim() && !/^\s*#/.test(t) && LINE.exec(t)[1].length <= col) break;
    const m = /^\s*(?:-\s+)?type:\s*["']?([\w]+)/.exec(t);
    if (m) return m[1];
  }
  return null;
}

function taskNames(text) {
  const names = new Set();
  const re = /^\s*-?\s*["']?name["']?\s*:\s*["']?([A-Za-z_][\w-]*)/gm;
  let m;
  while ((m = re.exec(text))) names.add(m[1]);
  return Array.from(names);
}

function completer(connections) {
  return (context) => {
    if (!schema) return null;
    const line = context.state.doc.lineAt(context.pos);
    const before = line.text.slice(0, context.pos - line.from);
    const isJson = /^\s*[{[]/.test(context.state.doc.toString());
    let value = isJson ? /"([\w$.-]+)"\s*:\s*"?([\w$.:-]*)$/.exec(before) : /^\s*(?:-\s+)?([\w$.-]+)\s*:\s*["']?([\w$.:-]*)$/.exec(before);
    let listValue = null;
    if (!value && !isJson) listValue = /^\s*-\s+([\w$.-]*)$/.exec(before) || /\[\s*(?:[\w$.-]+\s*,\s*)*([\w$.-]*)$/.exec(before);
    const ctx = isJson ? { path: [], taskType: null } : yamlContext(context.state.doc, line.number);
    const options = [];
    if (value || listValue) {
      // The key whose value this is: on this line ("key: va", "key: [a, b"),
      // else the list above ("key:\n  - va").
      const inline = !value && /^\s*(?:-\s+)?([\w$.-]+)\s*:\s*\[/.exec(before);
      const key = value ? value[1] : inline ? inline[1] : ctx.path[ctx.path.length - 1] === "[]" ? ctx.path[ctx.path.length - 2] : ctx.path[ctx.path.length - 1];
      const word = value ? value[2] : listValue[1];
      if (listValue && !value && !inline && /^\s*-\s+/.test(before) && !["depends_on", "connections", "keys", "tags", "assets", "outlets"].includes(key)) {
        // "- " starts a new list item: complete its first key below.
      } else {
        if (key === "connection" || key === "connections") for (const c of connections) options.push({ label: c, type: "variable", detail: "connection" });
        else if (key === "depends_on") for (const n of taskNames(context.state.doc.toString())) options.push({ label: n, type: "variable", detail: "task" });
        else {
          let s = isJson ? null : resolve(ctx.path.concat([key]), ctx.taskType);
          if (isJson || !s) s = anyKey(key);
          for (const v of s ? valuesOf(s, ctx.taskType) : []) options.push({ label: v, type: "enum", detail: key === "type" ? "task type" : key === "function" ? "transformation" : "" });
        }
        if (!options.length) return null;
        return { from: context.pos - word.length, options, validFor: /^[\w$.:-]*$/ };
      }
    }
    const keyMatch = isJson ? /"([\w$.-]*)$/.exec(before) : /^\s*(?:-\s+)?([\w$.-]*)$/.exec(before);
    if (!keyMatch || (!keyMatch[1] && !context.explicit)) return null;
    let path = ctx.path;
    if (!isJson && /^\s*-\s+/.test(before) && path[path.length - 1] !== "[]") path = path.concat(["[]"]);
    const s = isJson ? { anyOf: allObjects() } : resolve(path, ctx.taskType);
    if (!s) return null;
    for (const [k, description] of keysOf(s, ctx.taskType)) options.push({ label: k, type: "property", info: description || undefined, apply: isJson ? k : k + ": " });
    if (!options.length) return null;
    return { from: context.pos - keyMatch[1].length, options, validFor: /^[\w$.-]*$/ };
  };
}

// JSON text: complete any key or value the format knows (no indentation to go by).
function allObjects() {
  const out = [];
  const seen = new Set();
  (function walk(s) {
    s = deref(s);
    if (!s || typeof s !== "object" || seen.has(s)) return;
    seen.add(s);
    if (s.properties) out.push(s);
    for (const v of Object.values(s.properties || {})) walk(v);
    if (s.items) walk(s.items);
    for (const k of ["oneOf", "anyOf", "allOf"]) for (const a of s[k] || []) walk(a);
    if (s.then) walk(s.then);
    for (const d of Object.values(schema.$defs || {})) if (!seen.has(d)) walk(d);
  })(schema);
  return out;
}

function anyKey(key) {
  const found = allObjects().filter((o) => o.properties[key]).map((o) => o.properties[key]);
  return found.length ? { anyOf: found } : null;
}

// ---------------------------------------------------------------- diagnostics

function problemsToDiagnostics(state) {
  const items = document.querySelectorAll("#problems li");
  const diagnostics = [];
  for (const li of items) {
    let n = Number(li.dataset.line || 0);
    if (!n) { const m = /line (\d+)/.exec(li.textContent); n = m ? Number(m[1]) : 1; }
    n = Math.min(Math.max(n, 1), state.doc.lines);
    const line = state.doc.line(n);
    const indent = /^\s*/.exec(line.text)[0].length;
    const message = li.textContent.replace(/\s*\(line \d+\)\s*$/, "").trim();
    diagnostics.push({ from: line.from + Math.min(indent, line.length), to: line.to, severity: "error", message });
  }
  return diagnostics;
}

// ---------------------------------------------------------------- diff

function showDiff(original, current, onSave) {
  const dialog = document.createElement("dialog");
  dialog.className = "diff-dialog";
  dialog.setAttribute("aria-labelledby", "diff-dialog-h");
  dialog.innerHTML = '<h2 id="diff-dialog-h">Review the change</h2>' +
    '<p class="small muted">Left: the current version. Right: what saving makes the new version.</p>' +
    '<div class="merge-host" tabindex="0" role="region" aria-label="Changes"><div class="merge-labels" aria-hidden="true"><span>Current version</span>' +
    '<span>New version</span></div><div class="merge-body"></div></div>' +
    '<div class="form-actions"><button type="button" class="btn btn-primary" data-act="save">Save new version</button> ' +
    '<button type="button" class="btn" data-act="back">Back to editing</button></div>';
  document.body.appendChild(dialog);
  const readOnly = [basicSetup, EditorState.readOnly.of(true), EditorView.editable.of(false), yaml()];
  const named = (name) => EditorView.contentAttributes.of({ "aria-label": name });
  const merge = new MergeView({
    a: { doc: original, extensions: [...readOnly, named("Current version")] },
    b: { doc: current, extensions: [...readOnly, named("New version")] },
    parent: dialog.querySelector(".merge-body"),
    collapseUnchanged: { margin: 3, minSize: 6 },
    gutter: true,
  });
  const close = () => { merge.destroy(); dialog.close(); dialog.remove(); };
  dialog.addEventListener("cancel", close);
  dialog.querySelector('[data-act="back"]').addEventListener("click", close);
  dialog.querySelector('[data-act="save"]').addEventListener("click", () => { close(); onSave(); });
  dialog.showModal();
  dialog.querySelector('[data-act="save"]').focus();
}

// ---------------------------------------------------------------- wiring

function setup() {
  const textarea = document.querySelector("#editor-form textarea[name=definition]");
  if (!textarea || textarea.dataset.enhanced) return;
  textarea.dataset.enhanced = "1";
  const form = textarea.form;
  const select = form.querySelector("select[name=format]");
  const connections = readJson("editor-connections", []);
  const original = readJson("editor-original", null);
  const language = new Compartment();
  const label = form.querySelector('label[for="' + textarea.id + '"]');

  function languageFor(text) {
    const fmt = select ? select.value : "";
    if (fmt === "json" || (!fmt && /^\s*[{[]/.test(text))) return json();
    return yaml();
  }

  let timer = null;
  const view = new EditorView({
    parent: textarea.parentElement,
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        basicSetup,
        keymap.of([indentWithTab]),
        language.of(languageFor(textarea.value)),
        lintGutter(),
        autocompletion({ override: [completer(connections)], activateOnTyping: true }),
        EditorView.contentAttributes.of({ tabindex: "0", "aria-labelledby": label ? label.id || (label.id = "definition-label") : "", "aria-describedby": "feedback-status" }),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          textarea.value = update.state.doc.toString();
          clearTimeout(timer);
          // The server checks the text (htmx, as for the textarea's keyup).
          timer = setTimeout(() => { if (window.htmx) window.htmx.trigger(document.body, "definition-changed"); }, 500);
        }),
      ],
    }),
  });
  textarea.parentElement.insertBefore(view.dom, textarea.nextSibling);
  view.dom.classList.add("code-editor");
  textarea.hidden = true;
  textarea.removeAttribute("required"); // the editor shows an empty text; the server still refuses it
  if (label) label.removeAttribute("for");
  label && label.addEventListener("click", () => view.focus());
  if (window.datadogEditor) window.datadogEditor.destroy();
  window.datadogEditor = view;

  // The mode in use, on the editor's element (json or yaml).
  const mode = (text) => (languageFor(text).language.name === "json" ? "json" : "yaml");
  view.dom.dataset.mode = mode(textarea.value);
  if (select) select.addEventListener("change", () => {
    const text = view.state.doc.toString();
    view.dispatch({ effects: language.reconfigure(languageFor(text)) });
    view.dom.dataset.mode = mode(text);
  });

  if (document.querySelector("#problems li")) view.dispatch(setDiagnostics(view.state, problemsToDiagnostics(view.state)));

  // Saving a change to an existing pipeline shows the diff first.
  let confirmed = false;
  form.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (!button || button.name !== "save" || original === null || confirmed) return;
    textarea.value = view.state.doc.toString();
    if (textarea.value.trim() === original.trim()) return;
    event.preventDefault();
    showDiff(original, textarea.value, () => { confirmed = true; form.requestSubmit(button); });
  });

  loadSchema();
}

// After each check, its problems become diagnostics on their lines.
document.addEventListener("htmx:afterSettle", () => {
  const view = window.datadogEditor;
  if (!view || !document.getElementById("feedback")) return;
  view.dispatch(setDiagnostics(view.state, problemsToDiagnostics(view.state)));
});
// The copy helper replaces the form (and its textarea) with new text: the
// editor moves onto the new textarea.
document.addEventListener("htmx:load", () => {
  const fresh = document.querySelector("#editor-form textarea[name=definition]");
  if (fresh && !fresh.dataset.enhanced) setup();
});

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
else setup();
