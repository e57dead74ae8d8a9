"""The DAG helpers (pipelines/dag.py): plain Python, no Django, no database."""

from __future__ import annotations

import pytest

from pipelines.dag import downstream, find_cycle, layers, ready, topological_order, upstream

# extract -> (clean, audit) -> load -> report, plus an independent task.
DIAMOND: dict[str, list[str]] = {
    "extract": [],
    "clean": ["extract"],
    "audit": ["extract"],
    "load": ["clean", "audit"],
    "report": ["load"],
    "side": [],
}


def test_it_orders_dependencies_first() -> None:
    assert topological_order(DIAMOND) == ["extract", "clean", "audit", "load", "report", "side"]


def test_it_breaks_ties_by_input_order() -> None:
    tasks = {"b": [], "a": [], "c": ["a", "b"], "d": []}
    assert topological_order(tasks) == ["b", "a", "c", "d"]


def test_it_keeps_written_order_without_dependencies() -> None:
    assert topological_order({"z": [], "y": [], "x": []}) == ["z", "y", "x"]


def test_it_puts_a_dependency_listed_later_first() -> None:
    assert topological_order({"load": ["extract"], "extract": []}) == ["extract", "load"]


def test_it_refuses_to_order_a_cycle() -> None:
    with pytest.raises(ValueError, match="dependency cycle: a -> b -> a"):
        topological_order({"a": ["b"], "b": ["a"]})


def test_it_handles_a_long_chain_without_recursion_limits() -> None:
    tasks = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(5000)}
    assert topological_order(tasks)[-1] == "t4999"
    assert find_cycle(tasks) is None


def test_it_finds_no_cycle_in_a_dag() -> None:
    assert find_cycle(DIAMOND) is None
    assert find_cycle({}) is None


def test_it_finds_a_cycle_in_run_order() -> None:
    # a runs before b (b depends on a), b before c, and c before a.
    tasks = {"x": [], "a": ["c"], "b": ["a"], "c": ["b"]}
    assert find_cycle(tasks) == ["a", "b", "c"]


def test_it_starts_a_cycle_at_its_first_listed_task() -> None:
    tasks = {"c": ["b"], "b": ["a"], "a": ["c"]}
    assert find_cycle(tasks) == ["c", "a", "b"]


def test_it_finds_a_self_dependency() -> None:
    assert find_cycle({"a": [], "b": ["b"]}) == ["b"]


def test_it_finds_a_cycle_behind_a_dag_part() -> None:
    tasks = {"root": [], "a": ["root", "b"], "b": ["a"]}
    assert find_cycle(tasks) == ["a", "b"]


def test_it_ignores_unknown_dependencies() -> None:
    tasks = {"a": ["ghost"], "b": ["a"]}
    assert topological_order(tasks) == ["a", "b"]
    assert find_cycle(tasks) is None
    assert upstream(tasks, "b") == {"a"}
    assert ready(tasks, set(), set()) == ["a"]
    assert layers(tasks) == [["a"], ["b"]]


def test_it_lists_downstream_transitively() -> None:
    assert downstream(DIAMOND, "extract") == {"clean", "audit", "load", "report"}
    assert downstream(DIAMOND, "clean") == {"load", "report"}
    assert downstream(DIAMOND, "report") == set()


def test_it_lists_upstream_transitively() -> None:
    assert upstream(DIAMOND, "report") == {"load", "clean", "audit", "extract"}
    assert upstream(DIAMOND, "extract") == set()


def test_it_raises_key_error_for_an_unknown_task() -> None:
    with pytest.raises(KeyError):
        upstream(DIAMOND, "ghost")
    with pytest.raises(KeyError):
        downstream(DIAMOND, "ghost")


def test_it_counts_repeated_dependencies_once() -> None:
    tasks = {"a": [], "b": ["a", "a"]}
    assert topological_order(tasks) == ["a", "b"]
    assert ready(tasks, {"a"}, set()) == ["b"]


def test_it_lists_ready_tasks_in_input_order() -> None:
    assert ready(DIAMOND, set(), set()) == ["extract", "side"]
    assert ready(DIAMOND, {"extract"}, {"side"}) == ["clean", "audit"]
    assert ready(DIAMOND, {"extract", "clean"}, {"audit"}) == ["side"]
    assert ready(DIAMOND, {"extract", "clean", "audit", "side"}, set()) == ["load"]


def test_it_has_nothing_ready_when_all_done() -> None:
    assert ready(DIAMOND, set(DIAMOND), set()) == []


def test_it_groups_tasks_into_layers_by_longest_path() -> None:
    tasks = {"a": [], "b": ["a"], "c": ["b", "a"], "d": []}
    assert layers(tasks) == [["a", "d"], ["b"], ["c"]]
    assert layers(DIAMOND) == [["extract", "side"], ["clean", "audit"], ["load"], ["report"]]


def test_it_draws_a_cycle_in_a_last_layer() -> None:
    tasks = {"a": [], "b": ["a", "c"], "c": ["b"], "d": ["c"]}
    assert layers(tasks) == [["a"], ["b", "c", "d"]]


def test_it_has_no_layers_for_no_tasks() -> None:
    assert layers({}) == []
    assert topological_order({}) == []
