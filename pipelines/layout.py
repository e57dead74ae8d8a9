"""Geometry of the pages' pictures: the DAG drawn as SVG and the run's Gantt bars.

Pure functions of their arguments (no request, no database): the views pass
them what they read, the templates draw what they return, so pages work
without JavaScript; with it, frontend/dag.js (dagre) re-lays out the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pipelines import dag
from pipelines.models import TASK_ACTIVE, Execution, TaskRun

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 156, 46, 44, 16, 8
LABEL_CHARS = 19

# When a definition task ran as several chunks, the task shows its worst chunk.
_STATUS_RANK = [
    "failed",
    "upstream_failed",
    "cancelled",
    "running",
    "up_for_retry",
    "waiting",
    "queued",
    "pending",
    "skipped",
    "success",
]


def worst_status(statuses: Iterable[str]) -> str:
    """The worst of a task's chunk statuses (failed first, success last); "" for none."""
    ranked = sorted(statuses, key=lambda s: _STATUS_RANK.index(s) if s in _STATUS_RANK else 99)
    return ranked[0] if ranked else ""


def dag_graph(
    tasks: list[tuple[str, list[str]]],
    statuses: dict[str, str] | None = None,
    href: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Positions of nodes and edges for drawing ``tasks`` (name, depends_on) left to right.

    Columns are ``dag.layers`` (roots first); each column is centred
    vertically. Never raises, so the editor can draw half-written definitions.
    This is the drawing without JavaScript; in the browser frontend/dag.js
    lays the same boxes out again with dagre (each edge names its ``from``
    and ``to`` task for that) and adds pan and zoom.
    """
    statuses = statuses or {}
    graph = {name: deps for name, deps in tasks}
    layers = dag.layers(graph)
    tallest = max((len(layer) for layer in layers), default=0)
    pos: dict[str, tuple[int, int]] = {}
    nodes = []
    for col, layer in enumerate(layers):
        offset = (tallest - len(layer)) * (NODE_H + ROW_GAP) // 2
        for row, name in enumerate(layer):
            x = PAD + col * (NODE_W + COL_GAP)
            y = PAD + offset + row * (NODE_H + ROW_GAP)
            pos[name] = (x, y)
            label = name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
            nodes.append(
                {
                    "name": name,
                    "label": label,
                    "x": x,
                    "y": y,
                    "status": statuses.get(name, ""),
                    "href": href(name) if href else "",
                    "tx": x + 12,
                    # One line of text is centred; with a status, name above status.
                    "ty": y + (19 if statuses.get(name) else 28),
                    "sy": y + 35,
                }
            )
    edges = []
    for name, deps in graph.items():
        for dep in dict.fromkeys(deps):
            if dep in pos and name in pos and dep != name:
                (x1, y1), (x2, y2) = pos[dep], pos[name]
                x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
                bend = max(COL_GAP // 2, (x2 - x1) // 2)
                d = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 4},{y2}"
                edges.append({"d": d, "from": dep, "to": name})
    width = PAD * 2 + len(layers) * NODE_W + max(len(layers) - 1, 0) * COL_GAP
    height = PAD * 2 + tallest * NODE_H + max(tallest - 1, 0) * ROW_GAP
    return {
        "nodes": nodes,
        "edges": edges,
        "width": width,
        "height": height,
        # Wide graphs shrink to fit their box, but not below a readable size;
        # past that the box scrolls.
        "min_width": min(width, int(width * 0.6)),
        "w": NODE_W,
        "h": NODE_H,
    }


def definition_tasks(data: Any) -> list[tuple[str, list[str]]]:
    """(name, depends_on) of each task in a parsed, possibly invalid definition."""
    tasks = data.get("tasks") if isinstance(data, dict) else None
    result = []
    for task in tasks if isinstance(tasks, list) else []:
        if isinstance(task, dict) and isinstance(task.get("name"), str):
            deps = task.get("depends_on")
            deps = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
            result.append((task["name"], deps))
    return result


# ---------------------------------------------------------------- timeline


def _pct(seconds: float, span: float) -> float:
    return round(min(max(seconds / span * 100, 0.0), 100.0), 2)


def gantt(execution: Execution, runs: list[TaskRun], now: datetime) -> dict[str, Any]:
    """Bars of the task runs on one time axis (percent of the run's span).

    Each bar has a light part for the time the task waited in the queue
    (queued → started) and a solid part for the time it ran.
    """
    start = execution.started_at or execution.created_at
    end = execution.ended_at or now
    for run in runs:
        if run.ended_at and run.ended_at > end:
            end = run.ended_at
    span = max((end - start).total_seconds(), 0.001)
    bars = []
    for run in runs:
        bar: dict[str, Any] = {"run": run, "seconds": None, "wait": None}
        if run.queued_at and (run.started_at is None or run.queued_at < run.started_at):
            wait_end = run.started_at or (now if run.status in TASK_ACTIVE else run.queued_at)
            left = _pct((run.queued_at - start).total_seconds(), span)
            width = _pct((wait_end - run.queued_at).total_seconds(), span)
            bar["wait"] = {"left": left, "width": min(width, 100 - left)}
        if run.started_at is not None:
            finish = run.ended_at or (now if run.status in TASK_ACTIVE else run.started_at)
            left = _pct((run.started_at - start).total_seconds(), span)
            width = max(0.4, _pct((finish - run.started_at).total_seconds(), span))
            bar.update(left=left, width=round(min(width, 100 - left), 2))
            bar["seconds"] = (finish - run.started_at).total_seconds()
        bars.append(bar)
    return {"bars": bars, "span": span, "start": start}


def in_graph_order(runs: list[TaskRun]) -> list[TaskRun]:
    """Task runs upstream first (layer by layer), as the graph draws them."""
    by_name = {run.task_name: run for run in runs}
    layers = dag.layers({run.task_name: list(run.depends_on) for run in runs})
    return [by_name[name] for layer in layers for name in layer]
