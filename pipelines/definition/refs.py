"""What a normalized definition refers to: its connections (listed, renamed), its secrets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.checker import at, idx
from pipelines.definition.fields import redact_url


def connection_refs(defn: dict[str, Any]) -> list[tuple[str, str]]:
    """``(path, connection name)`` for every connection a normalized definition uses.

    A task names a connection with a ``connection`` key, on the task itself
    (sql, check) or on one of its object-valued keys (copy's source and
    destination). Lists are not searched: a ``connection`` key inside a
    rename mapping is a column, not a connection.
    """
    refs: list[tuple[str, str]] = []
    for i, task in enumerate(defn.get("tasks") or []):
        path = idx("tasks", i)
        if isinstance(task.get("connection"), str):
            refs.append((at(path, "connection"), task["connection"]))
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
    return out
