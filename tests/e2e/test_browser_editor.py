"""The definition editor (CodeMirror 6, static/bundle/editor.js) in Debian's Chromium.

Completion from the published JSON Schema and the user's connections,
the server's problems as diagnostics on their lines, the side-by-side diff
before a change is saved, and axe-core's accessibility check. Screenshots go
to a temporary folder (never committed): ``$TMPDIR/datadog-ui-shots``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from accounts.actor import Actor
from tests.e2e.conftest import (
    BAD_DEFINITION,
    LAPTOP,
    PHONE,
    login,
    serious_violations,
    snap,
)

pytestmark = [pytest.mark.browser]


def set_text(page: Any, text: str) -> None:
    """Replace the editor's text, as a paste would (no auto-indent on the way)."""
    content = page.locator("#editor-form .cm-content")
    content.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def options(page: Any) -> list[str]:
    box = page.locator(".cm-tooltip-autocomplete")
    box.wait_for()
    # CodeMirror ignores Enter for its interactionDelay (75 ms) after the list opens.
    page.wait_for_timeout(120)
    return [s.strip() for s in box.locator("li .cm-completionLabel").all_inner_texts()]


def open_editor(page: Any, base: str, path: str) -> None:
    """Log in as the developer and open the editor at ``path``, CodeMirror in place."""
    login(page, base, "dev1")
    page.goto(base + path)
    page.locator("#editor-form .cm-content").wait_for()


def editor_text(page: Any) -> str:
    return str(page.evaluate("window.datadogEditor.state.doc.toString()"))


HEAD = """\
name: completed
tasks:
  - name: first
"""


def test_it_completes_task_types_and_connection_names(
    page: Any, live_server: Any, team: dict[str, Any]
) -> None:
    open_editor(page, live_server.url, "/pipelines/new")
    # The textarea is still the form's field, hidden behind the editor.
    assert page.locator("textarea[name=definition]").is_hidden()

    set_text(page, HEAD + "    ty")
    page.keyboard.type("p")
    assert "type" in options(page)
    page.keyboard.press("Enter")
    assert editor_text(page).endswith("    type: ")

    # After "type: " every task type of the schema is offered.
    page.keyboard.press("Control+Space")
    offered = options(page)
    assert {"copy", "sql", "check", "wait", "python", "dbt"} <= set(offered), offered
    page.keyboard.type("sq")
    assert options(page) == ["sql"]
    page.keyboard.press("Enter")
    assert editor_text(page).endswith("    type: sql")

    # Connection names are the user's usable connections.
    page.keyboard.insert_text("\n    connection: ")
    page.keyboard.press("Control+Space")
    assert options(page) == ["wh"]
    page.keyboard.press("Enter")
    assert editor_text(page).endswith("    connection: wh")

    # Inside a copy task's transformations, the schema's functions.
    page.keyboard.insert_text(
        "\n    sql: SELECT 1\n  - name: load\n    type: copy"
        "\n    transformations:\n      - function: "
    )
    page.keyboard.press("Control+Space")
    assert {"filter", "select", "rename"} <= set(options(page))
    page.keyboard.press("Escape")
    # depends_on offers the tasks of the text.
    page.keyboard.insert_text("\n    depends_on: [")
    page.keyboard.press("Control+Space")
    assert {"first", "load"} <= set(options(page))
    page.keyboard.press("Escape")
    snap(page, "editor-completion")
    # The textarea (what the form posts) follows the editor.
    assert page.locator("textarea[name=definition]").input_value() == editor_text(page)

    # JSON: the format select switches the mode; values complete there too.
    page.get_by_label("Format", exact=True).select_option("json")
    page.locator('.cm-editor[data-mode="json"]').wait_for()
    set_text(page, '{"name": "j", "tasks": [{"name": "a", "type": "')
    page.keyboard.press("Control+Space")
    assert "sql" in options(page)
    page.get_by_label("Format", exact=True).select_option("yaml")
    page.locator('.cm-editor[data-mode="yaml"]').wait_for()


def test_a_bad_definition_shows_a_diagnostic_on_its_line(
    page: Any, live_server: Any, team: dict[str, Any]
) -> None:
    open_editor(page, live_server.url, "/pipelines/new")
    set_text(page, BAD_DEFINITION)
    page.locator('#problems li[data-path="tasks[1].depends_on[0]"]').wait_for()
    marked = page.locator("#editor-form .cm-lintRange-error")
    marked.first.wait_for()
    # The line the server named (14: "depends_on: [prepar]") carries the mark.
    line = page.evaluate(
        """() => {
          const el = document.querySelector('#editor-form .cm-lintRange-error');
          const all = document.querySelectorAll('#editor-form .cm-content > .cm-line');
          const lines = Array.from(all);
          return lines.indexOf(el.closest('.cm-line')) + 1;
        }"""
    )
    assert line == 14
    assert "depends_on: [prepar]" in marked.first.inner_text() or "depends_on" in (
        page.locator("#editor-form .cm-content > .cm-line").nth(13).inner_text()
    )
    assert page.locator("#editor-form .cm-lint-marker-error").count() == 1
    snap(page, "editor-diagnostic")

    # Fixed: the diagnostic goes, the preview draws both tasks (laid out by dagre).
    set_text(page, BAD_DEFINITION.replace("[prepar]", "[prepare]"))
    page.locator("#feedback .valid").wait_for()
    page.locator("#feedback svg[data-laid-out] [data-task=load]").wait_for()
    assert page.locator("#editor-form .cm-lintRange-error").count() == 0

    assert serious_violations(page) == []

    # The copy helper (htmx) replaces the form: the editor comes back on the new text.
    page.get_by_text("Add a copy task…").click()
    page.get_by_label("Task name").fill("copy_totals")
    page.get_by_label("Source connection").select_option("wh")
    page.get_by_label("Source table").fill("totals")
    page.get_by_label("Destination connection").select_option("wh")
    page.get_by_label("Destination table").fill("totals_copy")
    page.get_by_role("button", name="Add copy task to the definition").click()
    page.get_by_text("Copy task added").wait_for()
    page.locator("#editor-form .cm-content").wait_for()
    assert "name: copy_totals" in editor_text(page)
    assert page.locator("#editor-form .cm-editor").count() == 1
    page.get_by_role("button", name="Create pipeline").click()
    page.wait_for_url(re.compile(r".*/pipelines/[0-9a-f-]{36}$"))


def test_saving_a_change_shows_the_diff_first(
    page: Any, live_server: Any, team: dict[str, Any]
) -> None:
    from pipelines.models import Pipeline
    from pipelines.services import pipeline_create

    pipeline = pipeline_create(
        data={
            "name": "diffed",
            "tasks": [{"name": "only", "type": "sql", "connection": "wh", "sql": "SELECT 1"}],
        },
        actor=Actor.of(team["dev"]),
    )
    open_editor(page, live_server.url, f"/pipelines/{pipeline.pk}/edit")
    set_text(page, editor_text(page).replace("SELECT 1", "SELECT 42"))
    page.get_by_role("button", name="Save new version").click()

    dialog = page.get_by_role("dialog", name="Review the change")
    dialog.wait_for()
    assert Pipeline.objects.get(pk=pipeline.pk).version == 1  # nothing saved yet
    sides = dialog.locator(".cm-mergeView .cm-editor")
    assert sides.count() == 2
    assert "SELECT 1" in sides.nth(0).inner_text()
    assert "SELECT 42" in sides.nth(1).inner_text()
    assert dialog.locator(".cm-changedLine").count() >= 2  # the line, on each side
    assert serious_violations(page) == []
    page.set_viewport_size(PHONE)  # the two sides scroll sideways in a focusable region
    assert serious_violations(page) == []
    page.set_viewport_size(LAPTOP)
    snap(page, "editor-diff")

    # Back to editing keeps the text; saving from the dialog makes version 2.
    dialog.get_by_role("button", name="Back to editing").click()
    assert page.get_by_role("dialog").count() == 0
    assert "SELECT 42" in editor_text(page)
    page.get_by_role("button", name="Save new version").click()
    page.get_by_role("dialog", name="Review the change").get_by_role(
        "button", name="Save new version"
    ).click()
    page.wait_for_url(re.compile(rf".*/pipelines/{pipeline.pk}$"))
    saved = Pipeline.objects.get(pk=pipeline.pk)
    assert saved.version == 2
    assert saved.definition["tasks"][0]["sql"] == "SELECT 42"
