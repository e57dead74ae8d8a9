"""The checker of a whole definition (SPEC §2): the pipeline's fields, its tasks, their graph.

``validate`` checks a definition completely and returns either the
*normalized* definition — a plain JSON-able dict with every default filled
in — or every problem found, each with the path of the offending value
(``tasks[1].depends_on[0]``). Each task's own keys are checked by its type,
taken from the task-type registry (``pipelines.tasktypes.registry``), which
also runs it; the keys every task has are checked here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.checker import (
    NAME_SCHEMA,
    Checker,
    Problem,
    at,
    idx,
    kind,
    no_cycle_collection,
    ordered,
    quoted,
)
from pipelines.dag import find_cycles
from pipelines.definition import assets, fields
from pipelines.definition.errors import DefinitionError
from pipelines.definition.refs import check_output_refs
from pipelines.definition.text import parse_text
from pipelines.tasktypes.registry import TASK_TYPES

# Keys every task has, whatever its type.
TASK_COMMON_KEYS = ("name", "type", "depends_on", "retries", "retry_delay", "timeout")

# Task key -> (lowest, highest, default). Retries are bounded: unlimited
# retries would keep a broken task busy forever.
_TASK_LIMITS = {
    "retries": (0, 100, 0),
    "retry_delay": (0, 86_400, 10),  # seconds
    "timeout": (1, 86_400, 3600),  # seconds
}


def task_schema(name: str) -> dict[str, Any]:
    """The JSON schema of a task of the registered type ``name``: the common keys and its own."""
    task_type = TASK_TYPES[name]
    common: dict[str, Any] = {
        "name": NAME_SCHEMA,
        "type": {"const": name},
        "depends_on": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    }
    for key, (low, high, default) in _TASK_LIMITS.items():
        common[key] = {"type": "integer", "minimum": low, "maximum": high, "default": default}
    if name in assets.OUTLET_TYPES:
        common["outlets"] = assets.OUTLETS_SCHEMA
    return {
        "type": "object",
        "properties": {**common, **{key: d.schema for key, d in task_type.keys.items()}},
        "required": ["name", "type", *task_type.required()],
        "additionalProperties": False,
    }


def _task(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """One task: the common keys, then its type's keys (the registered type checks them)."""
    if not isinstance(raw, dict):
        c.add(path, f"expected an object, got {kind(raw)}")
        return None
    task: dict[Any, Any] = raw
    out: dict[str, Any] = {"name": None, "type": None}
    for key in ("name", "type"):
        if key not in task:
            c.add(at(path, key), f"missing required key '{key}'")
    if "name" in task:
        out["name"] = c.name(at(path, "name"), task["name"])
    if "type" in task:
        out["type"] = c.choice(at(path, "type"), task["type"], TASK_TYPES, "task type")
    if out["type"] is not None:
        task_type = TASK_TYPES[out["type"]]
        outlets = ("outlets",) if out["type"] in assets.OUTLET_TYPES else ()
        c.keys(
            path,
            task,
            required=task_type.required(),
            optional=(*TASK_COMMON_KEYS, *outlets, *task_type.optional()),
        )
        out.update(task_type.check(c, path, task))
        if outlets and "outlets" in task:
            out["outlets"] = assets.outlets(c, at(path, "outlets"), task["outlets"])
    else:
        # Without a known type the other keys cannot be judged (the type
        # problem is the one to fix first); only non-string keys are wrong.
        c.mapping(path, task)
    out["depends_on"] = fields.depends_on(c, at(path, "depends_on"), task.get("depends_on", []))
    for key, (low, high, default) in _TASK_LIMITS.items():
        out[key] = c.integer(at(path, key), task[key], low, high) if key in task else default
    return ordered(task, out)


def _tasks(c: Checker, path: str, raw: Any) -> list[Any] | None:
    """The tasks, then the graph they form (names, depends_on, cycles)."""
    items = c.list_of(path, raw, nonempty=True)
    if items is None:
        return None
    tasks = [_task(c, idx(path, i), item) for i, item in enumerate(items)]
    _check_graph(c, path, tasks)
    check_output_refs(c, tasks)
    assets.check_outlets(c, path, tasks)
    return tasks


def _check_graph(c: Checker, path: str, tasks: list[dict[str, Any] | None]) -> None:
    """Duplicate names, unknown or self dependencies, and cycles."""
    first: dict[str, int] = {}
    for i, task in enumerate(tasks):
        name = task.get("name") if task else None
        if name in first:
            c.add(at(idx(path, i), "name"), f"duplicate task name {quoted(name)}")
        elif isinstance(name, str):
            first[name] = i
    graph: dict[str, list[str]] = {name: [] for name in first}
    for i, task in enumerate(tasks):
        name = task.get("name") if task else None
        for j, dep in enumerate((task or {}).get("depends_on") or []):
            dpath = idx(at(idx(path, i), "depends_on"), j)
            if dep == name:
                c.add(dpath, f"task {quoted(dep)} depends on itself")
            elif dep not in first:
                c.add(dpath, f"unknown task {quoted(dep)}")
            elif isinstance(name, str) and first.get(name) == i:
                graph[name].append(dep)
    _check_cycles(c, path, tasks, first, graph)


def _check_cycles(
    c: Checker,
    path: str,
    tasks: list[dict[str, Any] | None],
    first: dict[str, int],
    graph: dict[str, list[str]],
) -> None:
    """One problem per cycle, at the dependency that closes it."""
    for cycle in find_cycles(graph):
        head, closing = cycle[0], cycle[-1]
        i = first[head]
        j = ((tasks[i] or {}).get("depends_on") or []).index(closing)
        chain = " -> ".join([*cycle, head])
        c.add(idx(at(idx(path, i), "depends_on"), j), f"dependency cycle: {chain}")


Check = Callable[[Checker, str, Any], Any]

# Top-level keys: validator and default, in the canonical order. `parameters`
# comes before `tasks` because tasks may refer to parameters.
PIPELINE_FIELDS: dict[str, tuple[Check, Callable[[], Any]]] = {
    "name": (Checker.name, lambda: None),
    "description": (Checker.string, lambda: ""),
    "schedule": (assets.schedule, lambda: None),
    "timezone": (fields.timezone, lambda: "UTC"),
    "catchup": (Checker.boolean, lambda: False),
    "enabled": (Checker.boolean, lambda: True),
    "tags": (fields.tags, list),
    "max_active_runs": (lambda c, p, v: c.integer(p, v, 1, 1000), lambda: 16),
    "parameters": (fields.parameters, dict),
    "on_failure": (fields.on_failure, lambda: None),
    "tasks": (_tasks, list),
}
PIPELINE_REQUIRED = ("name", "tasks")


def _pipeline(c: Checker, data: Any) -> dict[str, Any] | None:
    """The whole document."""
    optional = tuple(key for key in PIPELINE_FIELDS if key not in PIPELINE_REQUIRED)
    doc = c.keys("", data, required=PIPELINE_REQUIRED, optional=optional)
    if doc is None:
        return None
    out: dict[str, Any] = {}
    for key, (check, default) in PIPELINE_FIELDS.items():
        out[key] = check(c, key, doc[key]) if key in doc else default()
    return ordered(doc, out)


def validate(data: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check a parsed definition.

    Returns ``(normalized, [])`` when it is valid, ``(None, problems)`` with
    every problem found otherwise. Never raises.
    """
    c = Checker(fields.BUILTIN_PARAMETERS)
    normalized = None
    try:
        with no_cycle_collection():
            normalized = _pipeline(c, data)
    except Exception as exc:  # a bug here must still answer 400 rather than 500
        c.add("", f"could not validate the definition ({type(exc).__name__}: {exc})")
    problems = c.result()
    if problems or normalized is None:
        return None, problems or [Problem("", "invalid definition")]
    return normalized, []


def load(data: Any) -> dict[str, Any]:
    """The normalized definition, or ``DefinitionError`` listing every problem."""
    normalized, problems = validate(data)
    if normalized is None:
        raise DefinitionError(problems)
    return normalized


def load_text(text: str, fmt: str | None = None) -> dict[str, Any]:
    """``parse_text`` then ``load``."""
    return load(parse_text(text, fmt))
