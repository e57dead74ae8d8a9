"""pipelines.layout: the DAG's SVG geometry and the run's Gantt bars, pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipelines.layout import (
    NODE_W,
    dag_graph,
    definition_tasks,
    gantt,
    in_graph_order,
    worst_status,
)
from pipelines.models import Execution, TaskRun

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_it_lays_out_the_dag_in_layers() -> None:
    graph = dag_graph([("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])], {"a": "success"})
    x = {n["name"]: n["x"] for n in graph["nodes"]}
    assert x["a"] < x["b"] == x["c"] < x["d"]
    # Each edge names its ends (the browser's dagre layout redraws it from them),
    # once per dependency even when listed twice.
    assert sorted((e["from"], e["to"]) for e in graph["edges"]) == [
        ("a", "b"),
        ("a", "c"),
        ("b", "d"),
        ("c", "d"),
    ]
    assert all(e["d"].startswith("M") for e in graph["edges"])
    assert [e["to"] for e in dag_graph([("a", []), ("b", ["a", "a"])])["edges"]] == ["b"]
    assert graph["nodes"][0]["status"] == "success"
    # A cycle or unknown dependency still draws.
    assert len(dag_graph([("a", ["b"]), ("b", ["a"]), ("c", ["zzz"])])["nodes"]) == 3
    assert dag_graph([])["nodes"] == []


def test_it_sizes_the_picture_and_cuts_long_names() -> None:
    graph = dag_graph([("a" * 40, []), ("b", ["a" * 40])], href=lambda name: f"/log/{name}")
    assert graph["width"] > 2 * NODE_W
    first = graph["nodes"][0]
    assert first["label"].endswith("…") and len(first["label"]) == 19
    assert first["href"] == f"/log/{'a' * 40}"
    assert graph["min_width"] <= graph["width"]


def test_a_task_shows_its_worst_chunk() -> None:
    assert worst_status(["success", "failed", "running"]) == "failed"
    assert worst_status(["success", "skipped"]) == "skipped"
    assert worst_status(["success", "something-new"]) == "success"
    assert worst_status([]) == ""


def test_it_reads_tasks_from_a_half_written_definition() -> None:
    data = {"tasks": [{"name": "a"}, {"name": "b", "depends_on": ["a", 3]}, "junk", {"x": 1}]}
    assert definition_tasks(data) == [("a", []), ("b", ["a"])]
    assert definition_tasks({"tasks": "no"}) == []
    assert definition_tasks(None) == []


def _run(name: str, deps: list[str], status: str, *times: float | None) -> TaskRun:
    queued, started, ended = (at(t) if t is not None else None for t in times)
    return TaskRun(
        task_name=name,
        depends_on=deps,
        status=status,
        queued_at=queued,
        started_at=started,
        ended_at=ended,
    )


def test_it_orders_task_runs_upstream_first() -> None:
    runs = [_run("c", ["b"], "pending", None, None, None), _run("b", [], "success", 0, 1, 2)]
    assert [r.task_name for r in in_graph_order(runs)] == ["b", "c"]


def test_it_puts_the_bars_on_one_axis() -> None:
    execution = Execution(created_at=T0, started_at=T0, ended_at=at(100))
    done = _run("a", [], "success", 0, 10, 60)
    running = _run("b", ["a"], "running", 60, 70, None)
    chart = gantt(execution, [done, running], now=at(100))
    assert chart["span"] == 100.0 and chart["start"] == T0
    first, second = chart["bars"]
    assert first["wait"] == {"left": 0.0, "width": 10.0}
    assert (first["left"], first["width"], first["seconds"]) == (10.0, 50.0, 50.0)
    # Still running: the bar reaches now.
    assert (second["left"], second["width"], second["seconds"]) == (70.0, 30.0, 30.0)


def test_a_run_ending_after_its_execution_widens_the_axis() -> None:
    execution = Execution(created_at=T0, started_at=T0, ended_at=at(50))
    late = _run("a", [], "success", None, 0, 200)
    chart = gantt(execution, [late], now=at(300))
    assert chart["span"] == 200.0
    assert chart["bars"][0]["width"] == 100.0 and chart["bars"][0]["wait"] is None
