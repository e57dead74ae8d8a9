"""Task graphs laid out by dagre (static/bundle/dag.js) in Debian's Chromium.

Boxes measured from the SVG in the browser never overlap at 60 tasks or at a
200-wide fan-out; pan and zoom move the viewBox; on a run with a real worker
the task colours change live while the reader's view stays; the timeline of
200 tasks scrolls in its own box; axe-core finds no serious violation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from accounts.actor import Actor
from tests.e2e.conftest import UI_SHOTS as SHOTS
from tests.e2e.conftest import login, serious_violations, snap

pytestmark = [pytest.mark.browser]

# Every task box's rectangle in the SVG's coordinates, after dagre's layout.
BOXES = """(sel) => {
  const svg = document.querySelector(sel);
  return Array.from(svg.querySelectorAll('.node[data-task] rect')).map((r) => {
    const b = r.getBBox();
    return [r.closest('.node').dataset.task, b.x, b.y, b.width, b.height];
  });
}"""


# Two touch pointers 100 px apart move to 200 px apart around the box's centre.
PINCH = """(sel) => {
  const svg = document.querySelector(sel);
  const r = svg.getBoundingClientRect();
  const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  const fire = (type, id, x) => svg.dispatchEvent(new PointerEvent(type, {
    pointerId: id, pointerType: 'touch', isPrimary: id === 1, clientX: x, clientY: cy,
    bubbles: true, cancelable: true, button: 0}));
  fire('pointerdown', 1, cx - 50); fire('pointerdown', 2, cx + 50);
  fire('pointermove', 1, cx - 100); fire('pointermove', 2, cx + 100);
  fire('pointerup', 1, cx - 100); fire('pointerup', 2, cx + 100);
}"""


def overlaps(boxes: list[list[Any]]) -> list[tuple[str, str]]:
    """Pairs of boxes that share any area (sorted sweep on x)."""
    found = []
    ordered = sorted(boxes, key=lambda b: b[1])
    for i, (name, x, y, w, h) in enumerate(ordered):
        for other, x2, y2, _w2, h2 in ordered[i + 1 :]:
            if x2 >= x + w:
                break
            if y < y2 + h2 and y2 < y + h:
                found.append((name, other))
    return found


def sql(name: str, deps: list[str] | None = None) -> dict[str, Any]:
    task = {"name": name, "type": "sql", "connection": "wh", "sql": "SELECT 1"}
    return {**task, "depends_on": deps} if deps else task


def sixty_tasks() -> list[dict[str, Any]]:
    """Six layers of ten; each task depends on two of the layer before (crossing edges)."""
    tasks = []
    for layer in range(6):
        for i in range(10):
            deps = [f"l{layer - 1}_t{i}", f"l{layer - 1}_t{(i * 3 + 1) % 10}"] if layer else None
            tasks.append(sql(f"l{layer}_t{i}", sorted(set(deps)) if deps else None))
    return tasks


def fan_out(width: int) -> list[dict[str, Any]]:
    children = [f"part_{i:03d}" for i in range(width)]
    return [sql("start"), *(sql(c, ["start"]) for c in children), sql("finish", children)]


def viewbox(page: Any, sel: str) -> list[float]:
    return [float(v) for v in page.locator(sel).get_attribute("viewBox").split()]


def test_no_boxes_overlap_at_60_tasks_and_pan_zoom_move_the_view(
    page: Any, live_server: Any, team: dict[str, Any]
) -> None:
    from pipelines.services import pipeline_create

    pipeline = pipeline_create(
        data={"name": "sixty", "tasks": sixty_tasks()}, actor=Actor.of(team["dev"])
    )
    base = live_server.url
    login(page, base, "dev1")
    page.goto(f"{base}/pipelines/{pipeline.pk}")
    svg = "#pipeline-live svg[data-laid-out]"
    page.locator(svg).wait_for()
    boxes = page.evaluate(BOXES, svg)
    assert len(boxes) == 60
    assert overlaps(boxes) == []
    # dagre's ranks: every task sits right of the tasks it depends on.
    x = {b[0]: b[1] for b in boxes}
    assert all(x[f"l{n}_t0"] < x[f"l{n + 1}_t0"] for n in range(5))
    assert page.locator(f"{svg} path.edge").count() == 100
    snap(page, "graph-sixty")

    # Zoom in (button): the viewBox shrinks around the same centre.
    before = viewbox(page, svg)
    page.get_by_role("button", name="Zoom in").click()
    zoomed = viewbox(page, svg)
    assert zoomed[2] == pytest.approx(before[2] / 1.25, rel=0.01)
    # Drag: the view moves the other way.
    box = page.locator(svg).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 - 120, box["y"] + box["height"] / 2 - 40, steps=6)
    page.mouse.up()
    panned = viewbox(page, svg)
    assert panned[0] > zoomed[0] and panned[1] > zoomed[1]
    assert panned[2:] == zoomed[2:]
    # Ctrl+wheel zooms out around the pointer; Fit shows everything again.
    page.keyboard.down("Control")
    page.mouse.wheel(0, 200)
    page.keyboard.up("Control")
    assert viewbox(page, svg)[2] > panned[2]
    # Two fingers moving apart (touch pointer events) zoom in.
    before_pinch = viewbox(page, svg)
    page.evaluate(PINCH, svg)
    assert viewbox(page, svg)[2] == pytest.approx(before_pinch[2] / 2, rel=0.02)
    page.get_by_role("button", name="Fit the whole graph").click()
    fitted = viewbox(page, svg)
    right = max(b[1] + b[3] for b in boxes)
    bottom = max(b[2] + b[4] for b in boxes)
    assert fitted[0] <= 0 and fitted[1] <= 0
    assert fitted[0] + fitted[2] >= right and fitted[1] + fitted[3] >= bottom
    assert serious_violations(page) == []


def test_a_200_wide_fan_out_is_readable_and_its_200_task_timeline_scrolls(
    page: Any, live_server: Any, team: dict[str, Any]
) -> None:
    from pipelines.services import pipeline_create
    from tests.factories import make_execution

    pipeline = pipeline_create(
        data={"name": "wide", "tasks": fan_out(200)}, actor=Actor.of(team["dev"])
    )
    statuses = {f"part_{i:03d}": "success" if i % 3 else "running" for i in range(200)}
    execution = make_execution(pipeline, "running", ago=30, tasks={"start": "success", **statuses})
    base = live_server.url
    login(page, base, "dev1")
    for url, svg in (
        (f"{base}/pipelines/{pipeline.pk}", "#pipeline-live svg[data-laid-out]"),
        (f"{base}/runs/{execution.pk}", "#run-live svg[data-laid-out]"),
    ):
        page.goto(url)
        page.locator(svg).wait_for()
        boxes = page.evaluate(BOXES, svg)
        assert len(boxes) == 202
        assert overlaps(boxes) == []
        # The first view is readable: boxes drawn at least at 0.5 of their size.
        scale = page.evaluate(
            "(sel) => { const s = document.querySelector(sel);"
            " return s.getBoundingClientRect().width / s.viewBox.baseVal.width; }",
            svg,
        )
        assert scale >= 0.5
        # The box stays within the window: the page does not grow by the graph.
        assert page.locator(svg).bounding_box()["height"] <= 900 * 0.6 + 1
    snap(page, "graph-fan-out-run")
    page.locator("#run-live .grid-run").screenshot(path=str(SHOTS / "graph-fan-out-run-part.png"))
    # The run's states are drawn: a running task in its colour.
    assert page.locator('#run-live svg .node.s-running[data-task="part_000"]').count() == 1

    # The timeline of 202 tasks scrolls inside its own box.
    gantt = page.locator("#run-live .gantt")
    assert gantt.locator("li").count() == 202
    size = gantt.evaluate("(el) => [el.scrollHeight, el.clientHeight]")
    assert size[0] > size[1] and size[1] <= 32 * 15 + 1
    gantt.hover()
    page.mouse.wheel(0, 600)
    page.wait_for_function("() => document.querySelector('#run-live .gantt').scrollTop > 0")
    assert serious_violations(page) == []


@pytest.mark.worker
def test_states_update_live_on_a_run_and_the_view_stays(
    page: Any, live_server: Any, workers: Callable[..., Any], team: dict[str, Any]
) -> None:
    from pipelines.services import pipeline_create

    # Seconds of SQLite work: the page sees "slow" running across several polls.
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) "
        "SELECT count(*) FROM c"
    )
    pipeline = pipeline_create(
        data={
            "name": "live",
            "tasks": [
                {"name": "slow", "type": "sql", "connection": "wh", "sql": slow},
                sql("after_a", ["slow"]),
                sql("after_b", ["slow"]),
            ],
        },
        actor=Actor.of(team["dev"]),
    )
    workers()
    base = live_server.url
    login(page, base, "dev1")
    page.goto(f"{base}/pipelines/{pipeline.pk}")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}$"))
    svg = "#run-live svg[data-laid-out]"
    page.locator(svg).wait_for()
    seen = page.locator(f'{svg} .node[data-task="after_a"]').get_attribute("class")
    assert "s-success" not in seen
    page.get_by_role("button", name="Zoom in").click()
    kept = viewbox(page, svg)
    page.evaluate("window.__same_page = true")
    page.locator(f'{svg} .node.s-running[data-task="slow"]').wait_for(timeout=60_000)
    page.locator('#run-live[data-status="success"]').wait_for(timeout=60_000)
    for task in ("slow", "after_a", "after_b"):
        assert page.locator(f'{svg} .node.s-success[data-task="{task}"]').count() == 1
    assert page.evaluate("window.__same_page === true"), "the page reloaded"
    # The graph was replaced by each poll, laid out again the same way and
    # shown at the reader's zoom.
    assert viewbox(page, svg) == pytest.approx(kept)
    assert page.locator("#run-live .dag-controls").count() == 1
    snap(page, "graph-run-live")
    assert serious_violations(page) == []
