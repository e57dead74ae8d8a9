"""``copy`` task: rows from a source through transformations into a destination."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from connectors.copy import discard_stage, run_copy
from connectors.copy.http_spec import HTTP_SOURCE_KEYS as _HTTP_SOURCE_KEYS
from connectors.copy.http_spec import check_http_source
from connectors.spec import (
    DEFAULT_BATCH_SIZE,
    DESTINATION_MODES,
    DESTINATION_SCHEMAS,
    incremental_mode_problem,
)
from connectors.transform import FUNCTIONS, Columns, check_transformations
from core.checker import NAME_SCHEMA, Checker, at, kind, ordered
from pipelines.tasktypes.base import Key, LeaseLost, TaskCancelled, TaskContext, TaskType

MAX_BATCH_SIZE = 1_000_000
MAX_CHUNKS = 256
# An incremental copy's lookback: seconds for date and time columns, units
# for numbers (ten years of seconds is far more than any late commit needs).
MAX_LOOKBACK = 10 * 366 * 86_400

_STRING = {"type": "string"}
_COLUMNS = {"type": "array", "items": _STRING, "uniqueItems": True}

logger = logging.getLogger(__name__)


class CopyTask(TaskType):
    """One unit (the whole copy, or chunk ``ctx.chunk``) copied exactly once.

    ``check`` checks the source, the steps (each by its function in
    ``connectors.transform``) and the destination when a definition is
    saved. All the work of a run is in ``connectors.copy.run_copy``; ``run``
    only finds the two connections through the context.
    """

    name: ClassVar[str] = "copy"
    output_metrics: ClassVar[tuple[str, ...]] = (
        "rows_read",
        "rows_written",
        "resumed_from",
        "not_resumable",
        "schema_changes",
    )
    keys: ClassVar[dict[str, Key]] = {
        "source": Key(
            {
                "type": "object",
                "properties": {
                    "connection": NAME_SCHEMA,
                    "table": _STRING,
                    "query": _STRING,
                    # the columns of a query's rows that identify one (resume)
                    "keys": {**_COLUMNS, "minItems": 1},
                    # http sources (SPEC §8)
                    "path": _STRING,
                    "params": {"type": "object"},
                    "records": _STRING,
                    "paginate": {"type": "object"},
                },
                "required": ["connection"],
                "additionalProperties": False,
            },
            required=True,
        ),
        "destination": Key(
            {
                "type": "object",
                "properties": {
                    "connection": NAME_SCHEMA,
                    "table": _STRING,
                    "mode": {"enum": list(DESTINATION_MODES), "default": "append"},
                    "keys": _COLUMNS,
                    "schema": {"enum": list(DESTINATION_SCHEMAS), "default": "evolve"},
                },
                "required": ["connection", "table"],
                "additionalProperties": False,
            },
            required=True,
        ),
        "transformations": Key(
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": NAME_SCHEMA,
                        "function": {"enum": list(FUNCTIONS)},
                        "params": {"type": "object"},
                    },
                    "required": ["function", "params"],
                    "additionalProperties": False,
                },
            }
        ),
        "incremental": Key(
            {
                "type": ["object", "null"],
                "properties": {
                    "column": _STRING,
                    "lookback": {"type": "number", "minimum": 0, "maximum": MAX_LOOKBACK},
                },
                "required": ["column"],
                "additionalProperties": False,
            }
        ),
        "partition": Key(
            {
                "type": ["object", "null"],
                "properties": {
                    "column": _STRING,
                    "chunks": {"type": "integer", "minimum": 1, "maximum": MAX_CHUNKS},
                },
                "required": ["column", "chunks"],
                "additionalProperties": False,
            }
        ),
        "batch_size": Key(
            {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_BATCH_SIZE,
                "default": DEFAULT_BATCH_SIZE,
            }
        ),
    }

    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        """Rows from ``source`` through ``transformations`` into ``destination``."""
        out: dict[str, Any] = {"source": None}
        if "source" in task:
            out["source"] = _source(c, at(path, "source"), task["source"])
        out["transformations"], cols = [], Columns()
        if "transformations" in task:
            out["transformations"], cols = check_transformations(
                c, at(path, "transformations"), task["transformations"]
            )
        out["destination"] = None
        if "destination" in task:
            out["destination"] = _destination(c, at(path, "destination"), task["destination"], cols)
        out["incremental"] = _incremental(c, at(path, "incremental"), task.get("incremental"))
        out["partition"] = _partition(c, at(path, "partition"), task.get("partition"))
        out["batch_size"] = DEFAULT_BATCH_SIZE
        if "batch_size" in task:
            out["batch_size"] = c.integer(
                at(path, "batch_size"), task["batch_size"], 1, MAX_BATCH_SIZE
            )
        destination = out["destination"] or {}
        if out["incremental"] and destination.get("mode") in DESTINATION_MODES:
            mode = destination["mode"]
            problem = incremental_mode_problem(mode, destination.get("keys") or [])
            if problem:
                where = "mode" if mode == "replace" else "keys"
                c.add(at(at(path, "destination"), where), problem)
        return out

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        source = ctx.connection(task["source"]["connection"])
        destination = ctx.connection(task["destination"]["connection"])
        try:
            result = run_copy(ctx, source, destination)
        except LeaseLost:
            raise  # another worker may hold the task now, and its stage
        except BaseException as exc:
            last = ctx.attempt > int(ctx.task.get("retries") or 0)
            if isinstance(exc, TaskCancelled) or (last and isinstance(exc, Exception)):
                # No attempt will resume this copy: leave no stage behind.
                try:
                    discard_stage(ctx, destination)
                except Exception:  # noqa: BLE001 - the copy's own error is the one to report
                    logger.warning("copy stage not discarded", exc_info=True)
                    ctx.log("copy stage not discarded; it stays in the destination", "WARNING")
            raise
        how = (
            "skipped (already committed)"
            if result["skipped"]
            else ("raw COPY pass-through" if result["passthrough"] else "batches")
        )
        if result.get("resumed_from"):
            # Also in the run's metrics (its output): see connectors.copy.run_copy.
            how += f"; resumed after {result['resumed_from']} rows an earlier attempt committed"
        ctx.log(f"copied {result['rows_read']} rows read, {result['rows_written']} written; {how}")

    def abandon(self, ctx: TaskContext) -> None:
        """The last attempt was killed (SIGKILL, lost host): drop the stage it left."""
        discard_stage(ctx, ctx.connection(ctx.task["destination"]["connection"]))
        ctx.log("the killed last attempt's stage (if it left one) is dropped")


def _source(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """``{connection, table}``, ``{connection, query, keys}`` or an http source's
    ``{connection, path, params, records, paginate}``.

    ``keys`` (a query's only): the columns of the query's rows that identify
    one, so a copy can read it in order of them and resume. Whether the query
    returns them, unique and never NULL, is known only when it runs
    (connectors.copy.resume).
    """
    source = c.keys(
        path,
        raw,
        required=("connection",),
        optional=("table", "query", "keys", *_HTTP_SOURCE_KEYS),
    )
    if source is None:
        return None
    if "table" in source and "query" in source:
        c.add(path, "give either table or query, not both")
    elif "path" in source and ("table" in source or "query" in source):
        c.add(at(path, "path"), "is for http sources: give a path or a table or query, not both")
    elif not {"table", "query", "path"} & set(source):
        c.add(path, "needs a table or a query")
    elif "path" not in source:
        for key in _HTTP_SOURCE_KEYS[1:]:
            if key in source:
                c.add(at(path, key), "is for http sources (with a path), not with a table or query")
    out: dict[str, Any] = {}
    if "path" in source:
        out.update(check_http_source(c, path, source))
    if "connection" in source:
        out["connection"] = c.connection(at(path, "connection"), source["connection"])
    if "table" in source:
        out["table"] = c.table(at(path, "table"), source["table"])
    if "query" in source:
        out["query"] = c.sql(at(path, "query"), source["query"])
    if "keys" in source:
        if "query" not in source:
            c.add(
                at(path, "keys"),
                "is for a query source: a table is read in order of its primary key",
            )
        elif source["keys"] == []:
            c.add(
                at(path, "keys"),
                "must list at least one column of the query's rows (those that identify a row)",
            )
        else:
            out["keys"] = c.column_list(at(path, "keys"), source["keys"])
    return ordered(source, out)


def _destination(c: Checker, path: str, raw: Any, cols: Columns) -> dict[str, Any] | None:
    """``{connection, table, mode: append|replace|upsert, keys, schema}``.

    ``schema`` (evolve, freeze or discard; evolve when absent) is what the
    copy does when the source's columns differ (connectors.copy.schema_changes).
    """
    dest = c.keys(path, raw, required=("connection", "table"), optional=("mode", "keys", "schema"))
    if dest is None:
        return None
    out: dict[str, Any] = {"connection": None, "table": None, "mode": "append", "keys": []}
    if "connection" in dest:
        out["connection"] = c.connection(at(path, "connection"), dest["connection"])
    if "table" in dest:
        out["table"] = c.table(at(path, "table"), dest["table"])
    if "mode" in dest:
        out["mode"] = c.choice(at(path, "mode"), dest["mode"], DESTINATION_MODES, "mode")
    if "keys" in dest:
        out["keys"] = c.column_list(at(path, "keys"), dest["keys"], cols, nonempty=False)
    if out["mode"] == "upsert" and out["keys"] == []:
        c.add(at(path, "keys"), "mode 'upsert' needs keys: the columns that identify a row")
    if "schema" in dest:
        out["schema"] = c.choice(at(path, "schema"), dest["schema"], DESTINATION_SCHEMAS, "schema")
    return ordered(dest, out)


def _incremental(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """None or ``{column, lookback}``: the watermark column and how far back to read.

    ``lookback`` (default 0) is subtracted from the watermark: seconds for a
    date or time column, units for a number; the copy reads
    ``column >= watermark - lookback``.

    It is a column of the *source*: the copy engine filters and takes the
    watermark in the source query, before any transformation (see
    connectors/copy.py). So it is not checked against the columns the
    transformations leave; a select may drop it and a rename does not change
    its name here. The source's columns are unknown to this module.
    """
    if raw is None:
        return None
    inc = c.keys(path, raw, required=("column",), optional=("lookback",))
    if inc is None or "column" not in inc:
        return None
    out = {"column": c.column(at(path, "column"), inc["column"]), "lookback": 0}
    lookback = inc.get("lookback", 0)
    if isinstance(lookback, bool) or not isinstance(lookback, int | float):
        c.add(at(path, "lookback"), f"expected a number of seconds or units, got {kind(lookback)}")
    elif not 0 <= lookback <= MAX_LOOKBACK:
        c.add(at(path, "lookback"), f"must be between 0 and {MAX_LOOKBACK}")
    else:
        out["lookback"] = lookback
    return out


def _partition(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """None or ``{column, chunks: 1..256}``."""
    if raw is None:
        return None
    part = c.keys(path, raw, required=("column", "chunks"))
    if part is None:
        return None
    out: dict[str, Any] = {"column": None, "chunks": None}
    if "column" in part:
        out["column"] = c.column(at(path, "column"), part["column"])
    if "chunks" in part:
        out["chunks"] = c.integer(at(path, "chunks"), part["chunks"], 1, MAX_CHUNKS)
    return ordered(part, out)
