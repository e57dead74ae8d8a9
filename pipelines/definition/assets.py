"""Asset names in a definition: ``schedule: {assets: [...]}`` and a task's ``outlets`` (SPEC §8).

An asset is named ``<connection>.<schema>.<table>`` (``pipelines.assets.names``);
here only its form is checked, and that an outlet's connection is one the
pipeline's tasks use. Whether a scheduled asset's connection exists (and
the user may see it) is the Django side's check, which also writes each
name in full (``dwh.orders`` → ``dwh.public.orders``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.checker import Checker, at, idx, quoted
from core.names import NAME_RE, NAME_RULE
from pipelines.definition import fields

# Task types that may declare ``outlets``; a copy records its destination itself.
OUTLET_TYPES = frozenset({"sql", "python"})
MAX_ASSETS = 100
MAX_ASSET_NAME = 400
OUTLETS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]{0,99}\..+$"},
    "uniqueItems": True,
    "maxItems": MAX_ASSETS,
}


def asset_ref(c: Checker, path: str, raw: Any) -> str | None:
    """``<connection>.<schema>.<table>`` (or ``<connection>.<table>``, schema filled in later)."""
    text = c.string(path, raw)
    if text is None:
        return None
    connection, _, rest = text.partition(".")
    problem = None
    if not rest:
        problem = "expected <connection>.<schema>.<table>"
    elif len(text) > MAX_ASSET_NAME:
        problem = f"must be at most {MAX_ASSET_NAME} characters"
    elif not NAME_RE.match(connection):
        problem = f"connection part {NAME_RULE}"
    elif ".." in rest or any(ch.isspace() or not ch.isprintable() for ch in rest):
        problem = "must not contain '..', spaces or control characters"
    if problem:
        c.add(path, f"invalid asset name {quoted(text)}: {problem}")
        return None
    return text


def asset_list(c: Checker, path: str, raw: Any, *, nonempty: bool) -> list[str] | None:
    """Distinct asset names, at most MAX_ASSETS."""
    items = c.list_of(path, raw, nonempty=nonempty)
    if items is None:
        return None
    if len(items) > MAX_ASSETS:
        c.add(path, f"at most {MAX_ASSETS} assets")
        return None
    names: dict[str, None] = {}
    for i, item in enumerate(items):
        name = asset_ref(c, idx(path, i), item)
        if name is not None and name in names:
            c.add(idx(path, i), f"asset {quoted(name)} is listed twice")
        elif name is not None:
            names[name] = None
    return list(names)


def schedule(c: Checker, path: str, raw: Any) -> str | dict[str, Any] | None:
    """A cron expression (``fields.schedule``) or ``{assets: [name, ...]}``."""
    if not isinstance(raw, dict):
        return fields.schedule(c, path, raw)
    spec = c.keys(path, raw, required=("assets",))
    if spec is None or "assets" not in spec:
        return None
    assets = asset_list(c, at(path, "assets"), spec["assets"], nonempty=True)
    return {"assets": assets} if assets is not None else None


def outlets(c: Checker, path: str, raw: Any) -> list[str] | None:
    """A task's ``outlets``: what it writes, as asset names."""
    return asset_list(c, path, raw, nonempty=False)


def asset_renamed(name: Any, names: Mapping[str, str]) -> Any:
    """``name`` with its connection part renamed by ``names`` (``{old: new}``)."""
    if not isinstance(name, str):
        return name
    connection, dot, rest = name.partition(".")
    return f"{names[connection]}{dot}{rest}" if connection in names else name


def _task_connections(task: dict[str, Any]) -> set[str]:
    """The connections a normalized task names (as ``refs.connection_refs`` finds them)."""
    names = set()
    for holder in [task, *(v for v in task.values() if isinstance(v, dict))]:
        if isinstance(holder.get("connection"), str):
            names.add(holder["connection"])
    names.update(n for n in task.get("connections") or [] if isinstance(n, str))
    return names


def check_outlets(c: Checker, path: str, tasks: list[dict[str, Any] | None]) -> None:
    """Each outlet's connection is one the pipeline's tasks use (its run binds only those)."""
    used: set[str] = set()
    for task in tasks:
        used |= _task_connections(task or {})
    for i, task in enumerate(tasks):
        for j, name in enumerate((task or {}).get("outlets") or []):
            connection = name.partition(".")[0] if isinstance(name, str) else None
            if connection is not None and connection not in used:
                c.add(
                    idx(at(idx(path, i), "outlets"), j),
                    f"connection {quoted(connection)} is not used by any task of this pipeline"
                    " (an outlet names a table the pipeline writes through its connections)",
                )
