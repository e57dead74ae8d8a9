"""Checkpoint resume: a copy commits ranges of its source's key, a retry goes on after the last.

A copy that can resume (``resumable``) reads its source in order of a key
(the table's primary key, a query's declared ``keys``, or a keyless table's
row address), ``batch_size`` rows a range (``next_bound``), and commits
each range into the sink's stage with a batch marker holding the last key.
A killed attempt's retry finds the marker (the truth) and the run's
checkpoint (a hint, logged) and reads on after that key.
"""

from __future__ import annotations

# Security review (bandit B608): the SQL built here joins identifiers quoted
# by the dialect and SQL the engine generated; values are bound parameters.
from dataclasses import dataclass
from typing import Any

from connectors.base import Dialect, SqlConnector
from connectors.copy.addresses import RowAddress, row_address
from connectors.copy.query import where_sql
from connectors.copy.spec import CopyFailed, CopySpec
from connectors.copy.values import from_json
from connectors.types import Column

# Steps whose output for a row depends on other rows of the unit: a range of
# the source copied alone gives another result, so such a copy cannot resume.
WHOLE_SET_STEPS = ("aggregate", "dedupe")
# Why the last attempt a task has (``retries`` spent or 0) does not stage its batches.
NO_RETRY_LEFT = "no retry left (retries: 0 or spent): no later attempt would resume it"


@dataclass
class ReadOrder:
    """What a resumable copy reads its source in order of.

    ``key``: the columns of a position — a table's primary key, or the
    ``keys`` a query source declares (``declared``: checked, as they are
    read, to be unique and never NULL) — or, for a table without a primary
    key, the one row address ``address`` reads it by (rowid, ctid).
    """

    key: list[str]
    declared: bool = False
    address: RowAddress | None = None


def resumable(
    spec: CopySpec, source: SqlConnector, conn: Any, by_name: dict[str, Column]
) -> tuple[ReadOrder | None, str]:
    """What a copy reads its source in order of, when it can resume; else (None, why not).

    An unpartitioned copy, through row-by-row steps, of a source table with
    a primary key (it orders the rows totally and stays with a row when it
    is updated, so "after the last committed key" is the same set of rows in
    every attempt), of a query that declares ``keys``, or of a table without
    a primary key by its row address (``connectors.copy.addresses``: SQLite
    rowid, PostgreSQL ctid, each checked for moves on resume). The reason
    goes to the task's output (``not_resumable``): a killed attempt's retry
    starts again from row 0 there (still exactly once: nothing was committed
    to the table).
    """
    table = spec.source.get("table")
    declared = spec.source.get("keys") if not table else None
    if declared:
        missing = [k for k in declared if k not in by_name]
        if missing:
            raise CopyFailed(
                f"source keys {missing} are not columns the query returns"
                f" (columns: {', '.join(sorted(by_name))})"
            )
    if spec.chunk is not None:
        # Staging would double a chunk's cost (bench/RESULTS.md "Copy resume
        # cost"); a chunk is the table's 1/n, so its retry copies little again.
        return None, "a partitioned copy commits each chunk once: a killed chunk starts again"
    if not table and not declared:
        return None, (
            "a query source has no key that orders it the same way in every attempt:"
            " declare `keys` (columns that identify a row) to make it resumable"
        )
    for step in spec.transformations:
        if step.get("function") in WHOLE_SET_STEPS:
            return None, f"step {step['function']!r} needs the whole source in one attempt"
    if declared:
        return ReadOrder([str(k) for k in declared], declared=True), ""
    key = source.dialect.primary_key(conn, str(table))
    if key and all(k in by_name for k in key):
        return ReadOrder(key), ""
    address, why_not = row_address(source, conn, str(table))
    if address is None:
        return None, why_not
    return ReadOrder([address.name], address=address), ""


def check_declared_keys(
    source: SqlConnector,
    conn: Any,
    sql: str,
    params: dict[str, Any],
    key: list[str],
) -> None:
    """Fail when a row of ``sql`` has a NULL in a declared key (no range would hold it)."""
    d = source.dialect
    nulls = " OR ".join(f"{d.quote(k)} IS NULL" for k in key)
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT 1 FROM ({sql}) AS _dd_n WHERE {nulls} LIMIT 1", params or None)  # nosec B608
        found = cur.fetchone()
    finally:
        cur.close()
    if found is not None:
        raise CopyFailed(
            f"source keys {key} are NULL in some of the query's rows: a copy reads a query"
            " in order of its keys, and a row without one would be skipped; declare keys"
            " that are never NULL"
        )


def _key_params(prefix: str, values: list[Any]) -> dict[str, Any]:
    return {f"{prefix}{i}": v for i, v in enumerate(values)}


def _key_condition(d: Dialect, key: list[str], op: str, prefix: str) -> str:
    """``(k1, k2) op (%(p0)s, %(p1)s)``: row-value comparison, one key column bare."""
    cols = ", ".join(d.quote(k) for k in key)
    marks = ", ".join(f"%({prefix}{i})s" for i in range(len(key)))
    return f"{cols} {op} {marks}" if len(key) == 1 else f"({cols}) {op} ({marks})"


def key_range(
    d: Dialect, key: list[str], low: list[Any] | None, high: list[Any] | None
) -> tuple[list[str], dict[str, Any]]:
    """Conditions and parameters of the range ``low < key <= high`` (None: unbounded)."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if low is not None:
        conditions.append(_key_condition(d, key, ">", "_dd_kl"))
        params.update(_key_params("_dd_kl", low))
    if high is not None:
        conditions.append(_key_condition(d, key, "<=", "_dd_kh"))
        params.update(_key_params("_dd_kh", high))
    return conditions, params


def next_bound(
    source: SqlConnector,
    conn: Any,
    base_sql: str,
    conditions: list[str],
    params: dict[str, Any],
    key: list[str] | None,
    low: list[Any] | None,
    batch_size: int,
    *,
    declared: bool = False,
) -> list[Any] | None:
    """The key of the ``batch_size``-th row after ``low``; None when fewer rows are left.

    ``declared`` keys (a query's) may repeat: then the keys of the whole
    range and of the row after it are read and checked to increase strictly,
    so every row of the query is checked once as the copy goes.
    """
    if key is None:
        return None
    d = source.dialect
    extra, bound = key_range(d, key, low, None)
    order = ", ".join(d.quote(k) for k in key)
    sql = (
        f"SELECT {order} FROM ({where_sql(base_sql, conditions + extra)}) AS _dd_b"  # nosec B608
        f" ORDER BY {order}"
    )
    cur = conn.cursor()
    try:
        if not declared:
            cur.execute(f"{sql} LIMIT 1 OFFSET {int(batch_size) - 1}", {**params, **bound})
            row = cur.fetchone()
            return list(row) if row is not None else None
        cur.execute(f"{sql} LIMIT {int(batch_size) + 1}", {**params, **bound})
        keys = [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()
    for i in range(1, len(keys)):
        if keys[i] == keys[i - 1]:
            # Key values are data: the message says where, not what.
            raise CopyFailed(
                f"source keys {key} are not unique in the query's rows: two rows share a key"
                f" (around row {i} after the {'start' if low is None else 'last committed key'});"
                " declare keys that identify one row"
            )
    return list(keys[batch_size - 1]) if len(keys) > batch_size else None


def parse_key(stored: Any, key: list[str], by_name: dict[str, Column]) -> list[Any] | None:
    """A position stored as JSON back in the key columns' Python types."""
    if not isinstance(stored, list) or len(stored) != len(key):
        return None
    return [from_json(value, by_name[name]) for name, value in zip(key, stored, strict=True)]


def log_resume(ctx: Any, resume: dict[str, Any]) -> None:
    # The destination's batch marker decides; the checkpoint in the cache
    # only says what the killed attempt reported last (key values are data,
    # so neither line names them).
    hint = None
    try:
        hint = ctx.checkpoint_load()
    except Exception as exc:  # noqa: BLE001 - a checkpoint is a hint; the marker is the truth
        ctx.log(f"checkpoint not read: {type(exc).__name__}", "WARNING")
    ctx.log(
        f"resuming after batch {resume['batch']}: {resume['rows']} rows committed"
        " by an earlier attempt (destination marker)"
        + (
            f"; checkpoint said batch {hint.get('batch')}"
            if isinstance(hint, dict) and hint.get("batch") not in (None, resume["batch"])
            else ""
        )
    )


def checkpoint(ctx: Any, state: dict[str, Any]) -> None:
    try:
        ctx.checkpoint_save(state)
    except Exception as exc:  # noqa: BLE001 - the marker is the truth; a checkpoint is a hint
        ctx.log(f"checkpoint not saved: {type(exc).__name__}", "WARNING")
