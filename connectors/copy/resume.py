"""Checkpoint resume: a copy of a keyed table commits key ranges, a retry goes on after the last.

A copy that can resume (``resumable``) reads its source in order of the
table's primary key, ``batch_size`` rows a range (``next_bound``), and
commits each range into the sink's stage with a batch marker holding the
last key. A killed attempt's retry finds the marker (the truth) and the
run's checkpoint (a hint, logged) and reads on after that key.
"""

from __future__ import annotations

# Security review (bandit B608): the SQL built here joins identifiers quoted
# by the dialect and SQL the engine generated; values are bound parameters.
from typing import Any

from connectors.base import Dialect, SqlConnector
from connectors.copy.query import where_sql
from connectors.copy.spec import CopySpec
from connectors.copy.values import from_json
from connectors.types import Column

# Steps whose output for a row depends on other rows of the unit: a range of
# the source copied alone gives another result, so such a copy cannot resume.
WHOLE_SET_STEPS = ("aggregate", "dedupe")
# Why the last attempt a task has (``retries`` spent or 0) does not stage its batches.
NO_RETRY_LEFT = "no retry left (retries: 0 or spent): no later attempt would resume it"


def resumable(
    spec: CopySpec, source: SqlConnector, conn: Any, by_name: dict[str, Column]
) -> tuple[list[str] | None, str]:
    """The key a copy reads its source in order of, when it can resume; else (None, why not).

    Only an unpartitioned copy of a source *table* with a primary key,
    through row-by-row steps: the key orders the rows totally and
    stays with a row when it is updated, so "after the last committed key"
    is the same set of rows in every attempt (a query has no such key, and
    ctid/rowid move on update or VACUUM). The reason goes to the task's
    output (``not_resumable``): a killed attempt's retry starts again from
    row 0 there (still exactly once: nothing was committed to the table).
    """
    table = spec.source.get("table")
    if spec.chunk is not None:
        # Staging would double a chunk's cost (bench/RESULTS.md "Copy resume
        # cost"); a chunk is the table's 1/n, so its retry copies little again.
        return None, "a partitioned copy commits each chunk once: a killed chunk starts again"
    if not table:
        return None, "a query source has no key that orders it the same way in every attempt"
    for step in spec.transformations:
        if step.get("function") in WHOLE_SET_STEPS:
            return None, f"step {step['function']!r} needs the whole source in one attempt"
    key = source.dialect.primary_key(conn, str(table))
    if not key or any(k not in by_name for k in key):
        return None, f"table {table!r} has no primary key to read it in order of"
    return key, ""


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
) -> list[Any] | None:
    """The key of the ``batch_size``-th row after ``low``; None when fewer rows are left."""
    if key is None:
        return None
    d = source.dialect
    extra, bound = key_range(d, key, low, None)
    order = ", ".join(d.quote(k) for k in key)
    sql = (
        f"SELECT {order} FROM ({where_sql(base_sql, conditions + extra)}) AS _dd_b"  # nosec B608
        f" ORDER BY {order} LIMIT 1 OFFSET {int(batch_size) - 1}"
    )
    cur = conn.cursor()
    try:
        cur.execute(sql, {**params, **bound})
        row = cur.fetchone()
    finally:
        cur.close()
    return list(row) if row is not None else None


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
