// Task graphs laid out by dagre, with pan and zoom.
//
// The server draws every graph as SVG (pipelines/layout.py: columns of
// dag.layers) so pages work without scripts; this file lays the same boxes
// out again with dagre (crossings reduced, no overlaps, 200-wide fan-outs
// stay a column) and lets the reader pan (drag, wheel, arrow keys) and zoom
// (ctrl+wheel, + and -, the buttons). The run page replaces its graph on
// every htmx poll: the layout and the reader's view are kept per graph and
// applied to the new SVG, so only the state colours change.
import dagre from "dagre";

const RANK_SEP = 56;
const NODE_SEP = 14;
const MIN_SCALE = 0.08;
const MAX_SCALE = 3;
const READABLE = 0.55; // the first view never shrinks boxes below this
const layouts = new Map(); // signature -> {pos, edges, width, height}
const views = new Map(); // graph id -> {x, y, w, h} (the viewBox the reader left)
const viewOf = new Map(); // graph id -> the signature its kept view belongs to
const touched = new Set(); // graph ids the reader panned or zoomed: their view is kept

// The graph's identity, whatever order the server listed it in (a run's
// tasks may come in another order on the next poll).
function signature(nodes, edges) {
  return nodes.map((n) => n.name).sort().join("\u0001") + "\u0002" +
    edges.map((e) => e.from + "\u0001" + e.to).sort().join("\u0002");
}

function computeLayout(nodes, edges, w, h) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", ranksep: RANK_SEP, nodesep: NODE_SEP, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1))) g.setNode(n.name, { width: w, height: h });
  for (const e of edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to);
  dagre.layout(g);
  const pos = new Map();
  for (const n of nodes) {
    const p = g.node(n.name);
    pos.set(n.name, { x: Math.round(p.x - w / 2), y: Math.round(p.y - h / 2) });
  }
  const paths = new Map();
  for (const e of g.edges()) {
    const pts = g.edge(e).points;
    let d = "M" + pts[0].x.toFixed(1) + "," + pts[0].y.toFixed(1);
    for (let i = 1; i < pts.length; i++) d += " L" + pts[i].x.toFixed(1) + "," + pts[i].y.toFixed(1);
    paths.set(e.v + "\u0001" + e.w, d);
  }
  const graph = g.graph();
  return { pos, paths, width: Math.ceil(graph.width), height: Math.ceil(graph.height) };
}

function setViewBox(svg, v, byReader = true) {
  if (byReader) touched.add(svg.dataset.dag);
  svg.setAttribute("viewBox", [v.x, v.y, v.w, v.h].map((n) => Math.round(n * 10) / 10).join(" "));
  views.set(svg.dataset.dag, v);
}

function clampScale(svg, v) {
  const rect = svg.getBoundingClientRect();
  const scale = rect.width / v.w;
  if (scale < MIN_SCALE || scale > MAX_SCALE) return null;
  return v;
}

function zoom(svg, layout, factor, cx, cy) {
  const v = views.get(svg.dataset.dag);
  const nw = v.w / factor;
  const nh = v.h / factor;
  const next = { x: cx - (cx - v.x) / factor, y: cy - (cy - v.y) / factor, w: nw, h: nh };
  if (clampScale(svg, next)) setViewBox(svg, next);
}

function fit(svg, layout, byReader = true) {
  const box = svg.getBoundingClientRect();
  const ratio = box.height / Math.max(box.width, 1);
  let w = layout.width;
  let h = w * ratio;
  if (h < layout.height) { h = layout.height; w = h / ratio; }
  // Never larger than life: a small graph is drawn at its size, centred.
  if (w < box.width) { w = box.width; h = box.height; }
  setViewBox(svg, { x: (layout.width - w) / 2, y: (layout.height - h) / 2, w, h }, byReader);
}

function firstView(svg, layout) {
  const box = svg.getBoundingClientRect();
  const scale = Math.min(box.width / layout.width, box.height / layout.height);
  if (scale >= READABLE) return fit(svg, layout, false);
  // Too large to read whole: start at a readable size on the roots (left),
  // centred on the middle of the first column; the reader pans from there.
  const w = box.width / READABLE;
  const h = box.height / READABLE;
  setViewBox(svg, { x: 0, y: Math.max(0, Math.min(layout.height - h, layout.height / 2 - h / 2)), w, h }, false);
}

function svgPoint(svg, clientX, clientY) {
  const rect = svg.getBoundingClientRect();
  const v = views.get(svg.dataset.dag);
  return { x: v.x + ((clientX - rect.left) / rect.width) * v.w, y: v.y + ((clientY - rect.top) / rect.height) * v.h };
}

function controls(svg, layout) {
  const bar = document.createElement("div");
  bar.className = "dag-controls";
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Graph view");
  const buttons = [["+", "Zoom in", () => zoomCentre(1.25)], ["−", "Zoom out", () => zoomCentre(0.8)], ["Fit", "Fit the whole graph", () => fit(svg, layout)]];
  function zoomCentre(f) {
    const v = views.get(svg.dataset.dag);
    zoom(svg, layout, f, v.x + v.w / 2, v.y + v.h / 2);
  }
  for (const [text, label, action] of buttons) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-small";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.title = label;
    b.addEventListener("click", action);
    bar.appendChild(b);
  }
  const hint = document.createElement("span");
  hint.className = "small muted";
  hint.textContent = "Drag or arrow keys to pan, ctrl+wheel, pinch or +/− to zoom";
  bar.appendChild(hint);
  return bar;
}

function interact(svg, layout) {
  let drag = null;
  let moved = false;
  // Two fingers pinch to zoom around their midpoint.
  const touches = new Map();
  let pinch = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "touch") touches.set(event.pointerId, event);
    if (touches.size === 2) {
      const [a, b] = Array.from(touches.values());
      pinch = { d: Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY), v: { ...views.get(svg.dataset.dag) } };
      drag = null;
      return;
    }
    if (event.button !== 0) return;
    drag = { x: event.clientX, y: event.clientY, v: { ...views.get(svg.dataset.dag) } };
    moved = false;
  });
  svg.addEventListener("pointermove", (event) => {
    if (pinch && touches.has(event.pointerId)) {
      touches.set(event.pointerId, event);
      const [a, b] = Array.from(touches.values());
      const d = Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY);
      if (d > 0 && pinch.d > 0) {
        views.set(svg.dataset.dag, pinch.v);
        const p = svgPoint(svg, (a.clientX + b.clientX) / 2, (a.clientY + b.clientY) / 2);
        zoom(svg, layout, d / pinch.d, p.x, p.y);
      }
      moved = true;
      return;
    }
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!moved) svg.setPointerCapture(event.pointerId);
    moved = true;
    svg.classList.add("panning");
    const rect = svg.getBoundingClientRect();
    const k = drag.v.w / rect.width;
    setViewBox(svg, { ...drag.v, x: drag.v.x - dx * k, y: drag.v.y - dy * k });
  });
  const end = (event) => {
    drag = null;
    svg.classList.remove("panning");
    touches.delete(event.pointerId);
    if (touches.size < 2) pinch = null;
  };
  svg.addEventListener("pointerup", end);
  svg.addEventListener("pointercancel", end);
  // A drag that ends on a task is not a click on it.
  svg.addEventListener("click", (event) => {
    if (moved) { event.preventDefault(); event.stopPropagation(); moved = false; }
  }, true);
  svg.addEventListener("wheel", (event) => {
    const v = views.get(svg.dataset.dag);
    if (event.ctrlKey || event.metaKey) {
      event.preventDefault();
      const p = svgPoint(svg, event.clientX, event.clientY);
      zoom(svg, layout, event.deltaY < 0 ? 1.15 : 1 / 1.15, p.x, p.y);
      return;
    }
    // Plain wheel pans the graph while it has more to show that way;
    // at its edge the page scrolls as usual.
    const rect = svg.getBoundingClientRect();
    const k = v.w / rect.width;
    const nx = v.x + event.deltaX * k;
    const ny = v.y + event.deltaY * k;
    const canY = event.deltaY > 0 ? v.y + v.h < layout.height : v.y > 0;
    const canX = event.deltaX > 0 ? v.x + v.w < layout.width : v.x > 0;
    if ((event.deltaY && canY) || (event.deltaX && canX)) {
      event.preventDefault();
      setViewBox(svg, { ...v, x: event.deltaX && canX ? nx : v.x, y: event.deltaY && canY ? ny : v.y });
    }
  }, { passive: false });
  svg.addEventListener("keydown", (event) => {
    const v = views.get(svg.dataset.dag);
    const step = v.w / 8;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[event.key] && event.target === svg) {
      event.preventDefault();
      setViewBox(svg, { ...v, x: v.x + moves[event.key][0], y: v.y + moves[event.key][1] });
    } else if (event.key === "+" || event.key === "=") {
      zoom(svg, layout, 1.25, v.x + v.w / 2, v.y + v.h / 2);
    } else if (event.key === "-") {
      zoom(svg, layout, 0.8, v.x + v.w / 2, v.y + v.h / 2);
    }
  });
}

function enhance(svg) {
  if (svg.dataset.laidOut) return;
  svg.dataset.laidOut = "1";
  const w = Number(svg.dataset.w);
  const h = Number(svg.dataset.h);
  const nodeEls = Array.from(svg.querySelectorAll(".node[data-task]"));
  const edgeEls = Array.from(svg.querySelectorAll("path.edge[data-from]"));
  const nodes = nodeEls.map((el) => ({ name: el.dataset.task, el }));
  const edges = edgeEls.map((el) => ({ from: el.dataset.from, to: el.dataset.to, el }));
  const sig = signature(nodes, edges);
  let layout = layouts.get(sig);
  if (!layout) {
    layout = computeLayout(nodes, edges, w, h);
    layouts.set(sig, layout);
  }
  for (const n of nodes) {
    const rect = n.el.querySelector("rect");
    const p = layout.pos.get(n.name);
    const dx = p.x - Number(rect.getAttribute("x"));
    const dy = p.y - Number(rect.getAttribute("y"));
    rect.setAttribute("x", p.x);
    rect.setAttribute("y", p.y);
    for (const t of n.el.querySelectorAll("text")) {
      t.setAttribute("x", Number(t.getAttribute("x")) + dx);
      t.setAttribute("y", Number(t.getAttribute("y")) + dy);
    }
  }
  for (const e of edges) {
    const d = layout.paths.get(e.from + "\u0001" + e.to);
    if (d) e.el.setAttribute("d", d);
  }
  // The box keeps the page's width; its height follows the graph up to
  // most of the window, and the viewBox (pan and zoom) shows a part of it.
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  const wrap = svg.parentElement;
  wrap.classList.add("dag-live");
  const width = wrap.clientWidth || 600;
  const natural = layout.height * Math.min(1, width / layout.width);
  svg.style.cssText = "width: 100%; height: " + Math.round(Math.max(160, Math.min(natural, window.innerHeight * 0.6, 640))) + "px";
  svg.setAttribute("tabindex", "0");
  svg.setAttribute("focusable", "true");
  // A group (not an image) that takes focus for the arrow keys; the tasks
  // inside stay links of their own.
  svg.setAttribute("role", "group");
  svg.setAttribute("aria-roledescription", "pannable graph");
  const kept = views.get(svg.dataset.dag);
  // The same graph again (a poll), or one the reader moved: their view stays.
  if (kept && (viewOf.get(svg.dataset.dag) === sig || touched.has(svg.dataset.dag))) {
    setViewBox(svg, kept, touched.has(svg.dataset.dag));
  } else firstView(svg, layout);
  viewOf.set(svg.dataset.dag, sig);
  if (!wrap.previousElementSibling || !wrap.previousElementSibling.classList.contains("dag-controls")) {
    wrap.parentElement.insertBefore(controls(svg, layout), wrap);
  }
  interact(svg, layout);
}

function enhanceAll(root) {
  for (const svg of (root || document).querySelectorAll(".dag svg[data-dag]")) enhance(svg);
}

document.addEventListener("htmx:load", (event) => enhanceAll(event.target.parentElement || document));
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => enhanceAll());
else enhanceAll();
window.datadogDag = { enhanceAll };
