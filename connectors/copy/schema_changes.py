"""What a copy does when the source's columns differ from the destination's.

``destination.schema`` (SPEC §9 "Schema changes"): ``evolve`` (default)
adds the source columns an existing destination lacks (nullable) and widens
a column where the source's type is wider and the destination kind can do
it in place (integer → bigint → numeric, varchar(n) → longer or text, float
→ double); ``freeze`` fails before anything is written, naming the columns;
``discard`` drops the source columns the destination lacks. A destination
column the source no longer has gets NULL in new rows (``freeze``: fails).

``reconcile`` only decides; the sinks apply the plan (DDL for SQL tables, a
new header for CSV) and project each row onto the columns they write.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.copy.spec import CopyFailed
from connectors.spec import DESTINATION_SCHEMAS
from connectors.types import Column

SCHEMA_POLICIES = DESTINATION_SCHEMAS

_RANK = {"integer": 1, "bigint": 2, "numeric": 3}
_VARCHAR = re.compile(r"(?:character varying|varchar)\s*\((\d+)\)")
# Single-precision float natives (SQLite's REAL is 8 bytes: not one of them).
_SINGLE = {"real", "float4", "float"}


def _length(column: Column) -> int | None:
    """The declared length of a varchar column (None: not a bounded text)."""
    match = _VARCHAR.fullmatch((column.native or "").strip().lower())
    return int(match.group(1)) if match else None


def wider(existing: Column, incoming: Column) -> bool:
    """Whether ``incoming``'s type holds values ``existing``'s cannot (a widening kind)."""
    if existing.type in _RANK and incoming.type in _RANK:
        return _RANK[incoming.type] > _RANK[existing.type]
    if existing.type == "float" and incoming.type == "float":
        single = existing.kind != "sqlite" and (existing.native or "").lower() in _SINGLE
        incoming_single = incoming.kind != "sqlite" and (incoming.native or "").lower() in _SINGLE
        return single and not incoming_single
    if existing.type == "text" and incoming.type == "text":
        have = _length(existing)
        if have is None:
            return False
        want = _length(incoming)
        return want is None or want > have
    return False


@dataclass
class SchemaPlan:
    """The columns a sink writes, where each comes from in a source row, and the changes."""

    # The columns written, in the order rows are handed to the destination.
    columns: list[Column]
    # For each written column, its position in a source row (None: NULL).
    positions: list[int | None]
    added: list[Column] = field(default_factory=list)
    # (column as it is, its new type in the destination's spelling)
    widened: list[tuple[Column, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    identity: bool = True

    def changes(self) -> list[dict[str, Any]]:
        """The changes as the task output lists them (``schema_changes``)."""
        out: list[dict[str, Any]] = [
            {"change": "add_column", "column": c.name, "type": c.native or c.type}
            for c in self.added
        ]
        out += [
            {"change": "widen", "column": c.name, "from": c.native or c.type, "to": to}
            for c, to in self.widened
        ]
        out += [{"change": "null_for_missing", "column": n} for n in self.missing]
        out += [{"change": "drop_source_column", "column": n} for n in self.dropped]
        return out

    def project(self, rows: list[tuple]) -> list[tuple]:
        """Source rows as rows of the written columns."""
        if self.identity or not rows:
            return rows
        positions = self.positions
        return [tuple(None if p is None else row[p] for p in positions) for row in rows]


def describe(change: dict[str, Any]) -> str:
    """One change as a task log line."""
    kind, name = change["change"], change["column"]
    if kind == "add_column":
        return f"schema: added column {name!r} ({change['type']}, nullable)"
    if kind == "widen":
        return f"schema: widened column {name!r} from {change['from']} to {change['to']}"
    if kind == "null_for_missing":
        return f"schema: column {name!r} is not in the source; new rows get NULL"
    return f"schema: source column {name!r} is not in the destination; dropped"


def reconcile(
    policy: str,
    where: str,
    existing: list[Column],
    incoming: list[Column],
    *,
    keep_order: bool,
    new_type: Callable[[Column], str],
    widen_to: Callable[[Column, Column], str | None],
) -> SchemaPlan:
    """The plan for writing ``incoming`` rows into a destination with ``existing`` columns.

    ``keep_order``: the destination's own columns come first in its order
    (a file: rows are written whole, values typed as the source's), else
    only the source's columns are written, in source order (SQL: the others
    get NULL by omission).
    ``new_type`` spells an added column's type in the destination;
    ``widen_to`` the type a column is widened to, or None where the kind
    cannot (or need not) widen it in place. Raises ``CopyFailed`` for
    ``freeze`` on any difference, naming the columns.
    """
    if policy not in SCHEMA_POLICIES:
        raise CopyFailed(
            f"unknown destination schema {policy!r} (one of {', '.join(SCHEMA_POLICIES)})"
        )
    have = {c.name: c for c in existing}
    source = {c.name: i for i, c in enumerate(incoming)}
    new = [c for c in incoming if c.name not in have]
    missing = [c.name for c in existing if c.name not in source]
    widened: list[tuple[Column, str]] = []
    for column in incoming:
        old = have.get(column.name)
        if old is not None and wider(old, column):
            target = widen_to(old, column)
            if target is not None:
                widened.append((old, target))
    if policy == "freeze" and (new or missing or widened):
        problems = []
        if new:
            problems.append("new in the source: " + ", ".join(c.name for c in new))
        if missing:
            problems.append("not in the source: " + ", ".join(missing))
        if widened:
            problems.append(
                "wider in the source: "
                + ", ".join(f"{c.name} ({c.native or c.type} -> {to})" for c, to in widened)
            )
        raise CopyFailed(
            f"{where}: schema is frozen and the columns differ ({'; '.join(problems)});"
            " change the destination table, or set destination.schema to evolve or discard"
        )
    plan = SchemaPlan(columns=[], positions=[], missing=missing)
    if policy == "discard":
        plan.dropped = [c.name for c in new]
        new = []
    else:
        plan.added = new
        plan.widened = widened
    added = {c.name for c in new}
    widened_names = {c.name for c, _ in plan.widened}
    if keep_order:
        order = [c.name for c in existing] + [c.name for c in new]
    else:
        order = [c.name for c in incoming if c.name in have or c.name in added]
    by_name = {c.name: c for c in incoming}
    for name in order:
        # A file writes values as the source typed them; a table is written
        # as its columns are (widened ones as they will be).
        from_source = name not in have or name in widened_names or keep_order
        plan.columns.append(by_name[name] if from_source and name in by_name else have[name])
        plan.positions.append(source.get(name))
    plan.identity = plan.positions == list(range(len(incoming)))
    # Spelled as the destination will declare them.
    plan.added = [Column(c.name, c.type, new_type(c), None, True) for c in plan.added]
    return plan
