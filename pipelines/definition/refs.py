"""What a normalized definition refers to: its connections (listed, renamed), its secrets."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from core.checker import Checker, at, idx, quoted
from pipelines.definition.assets import asset_renamed
from pipelines.definition.fields import redact_url

_TASK_PATH = re.compile(r"\Atasks\[(?P<index>\d+)\]")


def check_output_refs(c: Checker, tasks: list[dict[str, Any] | None]) -> None:
    """Each ``{output: [task, key]}`` the checker met names an ancestor of its task.

    An ancestor through ``depends_on``: only then has its output been
    written when the task runs. Called once the whole graph is known.
    """
    depends = {
        task["name"]: [d for d in task.get("depends_on") or [] if isinstance(d, str)]
        for task in tasks
        if task and isinstance(task.get("name"), str)
    }
    for path, upstream, _key in c.output_refs:
        match = _TASK_PATH.match(path)
        task = tasks[int(match["index"])] if match and int(match["index"]) < len(tasks) else None
        name = task.get("name") if task else None
        if not isinstance(name, str):
            continue  # the task's name is the problem already reported
        where = at(path, "output")
        if upstream == name:
            c.add(where, f"task {quoted(name)} cannot use its own output")
        elif upstream not in depends:
            c.add(where, f"unknown task {quoted(upstream)}")
        elif upstream not in _ancestors(depends, name):
            c.add(
                where,
                f"task {quoted(upstream)} is not upstream of {quoted(name)}: an output"
                f" reference needs an ancestor through depends_on",
            )


def _ancestors(depends: dict[str, list[str]], name: str) -> set[str]:
    """Every task ``name`` waits for, directly or not (cycles are reported elsewhere)."""
    seen: set[str] = set()
    stack = list(depends.get(name, []))
    while stack:
        task = stack.pop()
        if task not in seen:
            seen.add(task)
            stack.extend(depends.get(task, []))
    return seen


def connection_refs(defn: dict[str, Any]) -> list[tuple[str, str]]:
    """``(path, connection name)`` for every connection a normalized definition uses.

    A task names a connection with a ``connection`` key, on the task itself
    (sql, check) or on one of its object-valued keys (copy's source and
    destination), or lists them in ``connections`` (python). Other lists are
    not searched: a ``connection`` key inside a rename mapping is a column,
    not a connection.
    """
    refs: list[tuple[str, str]] = []
    for i, task in enumerate(defn.get("tasks") or []):
        path = idx("tasks", i)
        if isinstance(task.get("connection"), str):
            refs.append((at(path, "connection"), task["connection"]))
        for j, name in enumerate(_listed(task)):
            if isinstance(name, str):
                refs.append((idx(at(path, "connections"), j), name))
        for key, value in task.items():
            if isinstance(value, dict) and isinstance(value.get("connection"), str):
                refs.append((at(at(path, key), "connection"), value["connection"]))
    return refs


def redacted(defn: dict[str, Any]) -> dict[str, Any]:
    """A copy of a definition with its secrets cut out: the webhook URL to scheme and host."""
    on_failure = defn.get("on_failure")
    if not isinstance(on_failure, dict) or not isinstance(on_failure.get("webhook"), str):
        return defn
    return {**defn, "on_failure": {**on_failure, "webhook": redact_url(on_failure["webhook"])}}


def with_connections_renamed(defn: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A copy of a normalized definition whose connection refs are renamed by ``names``.

    Looks where ``connection_refs`` looks, so a column called ``connection``
    in a rename mapping is left alone.
    """
    out = json.loads(json.dumps(defn))
    for task in out.get("tasks") or []:
        for holder in [task, *(v for v in task.values() if isinstance(v, dict))]:
            if isinstance(holder.get("connection"), str):
                holder["connection"] = names.get(holder["connection"], holder["connection"])
        if _listed(task):
            task["connections"] = [
                names.get(n, n) if isinstance(n, str) else n for n in _listed(task)
            ]
        if isinstance(task.get("outlets"), list):
            task["outlets"] = [asset_renamed(name, names) for name in task["outlets"]]
    schedule = out.get("schedule")
    if isinstance(schedule, dict) and isinstance(schedule.get("assets"), list):
        schedule["assets"] = [asset_renamed(name, names) for name in schedule["assets"]]
    return out


def _listed(task: dict[str, Any]) -> list[Any]:
    """A task's ``connections`` list (python tasks), or []."""
    listed = task.get("connections")
    return listed if isinstance(listed, list) else []
