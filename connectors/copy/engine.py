"""The copy's orchestration: one unit, exactly once.

``run_copy`` reads the task into a ``CopySpec``, asks the destination's sink
whether an earlier attempt committed the unit (then it is skipped), copies
from a SQL or file source, and reports rows, watermark and checkpoint to the
run's context. ``discard_stage`` drops what a staged load left when no
attempt will resume it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import Connector, FileConnector, SqlConnector
from connectors.copy.file_sink import FileSink
from connectors.copy.file_source import copy_from_file
from connectors.copy.http_source import copy_from_http
from connectors.copy.resume import checkpoint
from connectors.copy.sink import Sink
from connectors.copy.spec import CopyFailed, CopySpec, Unit, check_mode
from connectors.copy.sql_sink import SqlSink
from connectors.copy.sql_source import copy_from_sql
from connectors.http import HttpConnector


def make_sink(
    connector: Connector,
    table: str,
    mode: str,
    keys: list[str],
    unit: Unit,
    timeout: Callable[[], float | None],
    *,
    schema: str = "evolve",
    log: Callable[[str], Any] | None = None,
) -> Sink:
    """The sink for a destination connector; ``schema`` is destination.schema (SPEC §9)."""
    check_mode(mode, keys)
    if isinstance(connector, SqlConnector):
        return SqlSink(connector, table, mode, keys, unit, timeout, schema, log)
    if isinstance(connector, FileConnector):
        return FileSink(connector, table, mode, unit, keys, schema, log)
    raise CopyFailed(f"{connector.kind} cannot be a copy destination")


def run_copy(
    ctx: Any,
    source: Connector,
    destination: Connector,
    *,
    pushdown: bool | int = True,
    passthrough: bool = True,
) -> dict[str, Any]:
    """Copy one unit of ``ctx.task`` (a normalized ``copy`` task) exactly once.

    ``pushdown=False`` forces every transformation onto the batch path (an int:
    push at most that many leading steps) and
    ``passthrough=False`` disables a kind pair's fast copy (benchmarks and tests).
    Returns ``{rows_read, rows_written, skipped, passthrough}`` and fills
    ``ctx.metrics``; stages the incremental watermark with
    ``ctx.watermark_stage`` (the engine commits it when the run succeeds).
    """
    spec = CopySpec.of(ctx, pushdown=pushdown, passthrough=passthrough)
    unit = spec.unit
    sink = make_sink(
        destination,
        spec.table,
        spec.mode,
        spec.keys,
        unit,
        spec.timeout,
        schema=spec.schema,
        log=ctx.log,
    )
    done = sink.committed()
    if done is not None:
        # An earlier attempt committed this unit: do not copy it again. The
        # watermark is staged again, since that attempt's run did not succeed.
        if done.get("watermark") is not None:
            ctx.watermark_stage(done["watermark"])
        ctx.log(
            f"copy unit {unit.index} already committed"
            f" ({done.get('rows_written', 0)} rows); skipped"
        )
        ctx.metrics["rows_read"] = ctx.metrics.get("rows_read", 0)
        ctx.metrics["rows_written"] = ctx.metrics.get("rows_written", 0)
        return {"rows_read": 0, "rows_written": 0, "skipped": True, "passthrough": False}

    if isinstance(source, SqlConnector):
        result = copy_from_sql(spec, source, destination, sink)
    elif isinstance(source, FileConnector):
        result = copy_from_file(spec, source, sink)
    elif isinstance(source, HttpConnector):
        result = copy_from_http(spec, source, sink)
    else:
        raise CopyFailed(f"{source.kind} cannot be a copy source")
    ctx.metrics["rows_read"] = ctx.metrics.get("rows_read", 0) + result["rows_read"]
    ctx.metrics["rows_written"] = ctx.metrics.get("rows_written", 0) + result["rows_written"]
    if result.get("watermark") is not None:
        ctx.watermark_stage(result["watermark"])
    if sink.schema_changes:
        # The task's output lists each change (the task log has a line each).
        ctx.metrics["schema_changes"] = ctx.metrics.get("schema_changes", []) + sink.schema_changes
        result["schema_changes"] = sink.schema_changes
    if "resumed_from" in result:
        # The task's output (its metrics): rows an earlier attempt committed.
        ctx.metrics["resumed_from"] = result["resumed_from"]
    elif result.get("not_resumable"):
        # Said in the output: a killed attempt of this copy starts again.
        ctx.metrics["not_resumable"] = result["not_resumable"]
    checkpoint(ctx, {"unit": unit.index, "committed": True, "rows_written": result["rows_written"]})
    return result


def discard_stage(ctx: Any, destination: Connector) -> None:
    """Drop what a staged copy of this unit committed so far (no attempt will resume it).

    For a cancelled execution, or a failed last attempt: the table readers see
    was never touched, and the stage would otherwise stay in the destination.
    """
    task = ctx.task
    dst_spec = task.get("destination") or {}
    chunk = getattr(ctx, "chunk", None) if task.get("partition") else None
    if chunk is not None:
        return  # partitioned copies never stage
    unit = Unit(ctx.execution_id, ctx.task_name, None)
    sink = make_sink(
        destination,
        str(dst_spec.get("table") or ""),
        dst_spec.get("mode") or "append",
        list(dst_spec.get("keys") or []),
        unit,
        lambda: 30.0,
    )
    sink.discard()
