"""Copying from a SQL source: push-down, one read-only snapshot, resumable key ranges.

The transformations are compiled into the source query
(``connectors.transform``) and the unit is read inside one read-only
snapshot, so the partition bounds, the incremental watermark and the rows
agree. When the source kind has a fast path to the destination's
(``SqlConnector.fast_copy_to``: PostgreSQL → PostgreSQL streams raw COPY
bytes) and no leftover step needs Python values, that path moves the rows.
Everything else streams in batches of at most ``FETCH_ROWS`` rows; memory
stays bounded whatever ``batch_size``. A copy of a keyed table, of a query
with declared ``keys`` or of a keyless table by its row address commits
ranges of that key and can resume (``connectors.copy.resume``).
"""

from __future__ import annotations

# Security review (bandit B608, marked "# nosec B608" line by line): the SQL
# built here with f-strings joins only identifiers quoted by the dialect
# (connectors.base refuses what quoting cannot make safe) and SQL this module
# generated; values always travel as bound parameters. A source `query` is
# the pipeline author's own SQL, run on a connection they may use (SPEC §5),
# so it is not an injection.
from contextlib import closing
from typing import Any

from connectors.base import (
    Connector,
    ConnectorError,
    SqlConnector,
    _used_params,
    check_identifier,
    is_driver_error,
)
from connectors.copy.overlap import prefetched
from connectors.copy.partitions import chunk_range
from connectors.copy.query import first_row, scalar, where_sql
from connectors.copy.resume import (
    NO_RETRY_LEFT,
    check_declared_keys,
    checkpoint,
    key_range,
    log_resume,
    next_bound,
    parse_key,
    resumable,
)
from connectors.copy.sink import Sink
from connectors.copy.spec import CopyFailed, CopySpec, side_error
from connectors.copy.sql_sink import SqlSink
from connectors.copy.values import (
    json_value,
    lower_bound,
    newest,
    parse_batch,
    parsers,
    stored_value,
)
from connectors.transform import (
    BatchTransformer,
    TextLineTransformer,
    compile_pushdown,
    needed_columns,
)


def copy_from_sql(
    spec: CopySpec, source: SqlConnector, destination: Connector, sink: Sink
) -> dict[str, Any]:
    """Copy the unit of ``spec`` from SQL ``source`` into ``sink`` (see the module doc)."""
    ctx = spec.ctx
    src_spec = spec.source
    transformations = spec.transformations
    incremental, partition, chunk = spec.incremental, spec.partition, spec.chunk
    batch_size = spec.batch_size
    d = source.dialect
    run_params = spec.params
    if src_spec.get("table"):
        base_sql = f"SELECT * FROM {d.table(src_spec['table'])}"  # nosec B608
        base_params: dict[str, Any] = {}
    elif src_spec.get("query"):
        query = str(src_spec["query"]).strip().rstrip(";")
        base_sql = f"SELECT * FROM ({query}) AS _dd_src"  # nosec B608
        base_params = _used_params(query, run_params) or {}
    else:
        raise CopyFailed("copy source needs a table or a query")

    try:
        with source.connect(read_only=True, timeout_s=spec.timeout()) as conn:
            if src_spec.get("table"):
                found = source.table_columns(conn, src_spec["table"])
                if found is None:
                    raise CopyFailed(
                        f"{source.where()}: table {src_spec['table']!r} does not exist"
                    )
                columns = found
            else:
                columns = source.describe_query(conn, base_sql, base_params)
            by_name = {c.name: c for c in columns}
            conditions: list[str] = []
            params = dict(base_params)
            # An incremental read: column >= watermark - lookback (inclusive, so
            # a row committed late at the watermark's value still comes), and
            # <= the greatest value found when the unit started (``cap``), so
            # the new watermark covers exactly the rows read.
            watermark = stored = cap = None
            max_sql = ""
            if incremental:
                column = check_identifier(incremental.get("column"))
                if column not in by_name:
                    raise CopyFailed(f"incremental column {column!r} is not in the source")
                stored = ctx.watermark_load()
                if stored is not None:
                    conditions.append(f"{d.quote(column)} >= %(_dd_wm)s")
                    params["_dd_wm"] = lower_bound(
                        stored, by_name[column], spec.lookback, source.typed_values
                    )
                filtered = where_sql(base_sql, conditions)
                max_sql = f"SELECT MAX({d.quote(column)}) FROM ({filtered}) AS _dd_m"  # nosec B608
                if not (partition and chunk):
                    cap = scalar(source, conn, max_sql, params)
                    watermark = newest(cap, stored, by_name[column])
            if partition and chunk:
                column = check_identifier(partition.get("column"))
                if column not in by_name:
                    raise CopyFailed(f"partition column {column!r} is not in the source")
                filtered = where_sql(base_sql, conditions)
                bounds_sql = (
                    f"SELECT MIN({d.quote(column)}), MAX({d.quote(column)})"  # nosec B608
                    f" FROM ({filtered}) AS _dd_m"
                )

                def compute() -> dict[str, Any]:
                    lo, hi = first_row(source, conn, bounds_sql, params)
                    plan = {"lo": json_value(lo), "hi": json_value(hi)}
                    if incremental:
                        # Every chunk reads up to the same greatest value.
                        plan["watermark"] = json_value(scalar(source, conn, max_sql, params))
                    return plan

                plan = sink.plan(compute)
                if incremental:
                    wm_column = by_name[check_identifier(incremental.get("column"))]
                    cap = plan.get("watermark")
                    if cap is not None and source.typed_values:
                        cap = stored_value(cap, wm_column)
                    watermark = newest(cap, stored, wm_column)
                bounds = chunk_range(plan, chunk[0], chunk[1], by_name[column])
                q = d.quote(column)
                if bounds is None:
                    if chunk[0] != 0:
                        conditions.append("1 = 0")
                else:
                    low, high, last = bounds
                    params["_dd_lo"], params["_dd_hi"] = low, high
                    cond = f"({q} >= %(_dd_lo)s AND {q} {'<=' if last else '<'} %(_dd_hi)s)"
                    if chunk[0] == 0:
                        cond = f"({cond} OR {q} IS NULL)"
                    conditions.append(cond)

            def at_most(column: str, name: str) -> str:
                # A run without a watermark reads every row: NULLs too.
                cond = f"{d.quote(column)} <= %({name})s"
                return cond if stored is not None else f"({cond} OR {d.quote(column)} IS NULL)"

            if cap is not None and incremental:
                conditions.append(at_most(incremental["column"], "_dd_wmcap"))
                params["_dd_wmcap"] = cap
            # A copy that can resume reads its source in ranges of its key and
            # commits each range (staged); see resumable for when it can.
            order, not_resumable = resumable(spec, source, conn, by_name)
            resume = sink.resume_point() if order else None
            if order and resume is None and ctx.retries_left == 0:
                # No attempt comes after this one (`retries` spent, 0 by
                # default): staging would only double the write.
                order, not_resumable = None, NO_RETRY_LEFT
            key = order.key if order else None
            address = order.address if order else None
            if address is not None and resume is not None:
                moved = address.changed(conn, resume.get("address"))
                if moved:
                    # Rows may have new addresses: reading on after the
                    # position could skip or repeat some. The stage starts
                    # again (begin without resume empties it).
                    ctx.log(f"starting the copy again from row 0, not resuming: {moved}", "WARNING")
                    resume = None
            # What shows a row address moved, as the first attempt saw it.
            address_state = (
                None
                if address is None
                else (resume["address"] if resume is not None else address.version(conn))
            )
            position = None
            if resume is not None and order:
                position = (
                    address.parse(resume.get("position"))
                    if address is not None
                    else parse_key(resume.get("position"), order.key, by_name)
                )
                if incremental and resume.get("watermark") is not None:
                    # The first attempt's watermark, and no row past it: the
                    # rows after the position are the same set the first
                    # attempt would have read (as they are now), and the
                    # next run's `>= watermark - lookback` misses none.
                    column = check_identifier(incremental.get("column"))
                    watermark = stored_value(resume["watermark"], by_name[column])
                    conditions.append(at_most(column, "_dd_wmhi"))
                    params["_dd_wmhi"] = watermark
                log_resume(ctx, resume)
            if order is not None and order.declared:
                check_declared_keys(
                    source, conn, where_sql(base_sql, conditions), params, order.key
                )

            def bound_after(low: list[Any] | None) -> list[Any] | None:
                """Where the range after ``low`` ends (None: it runs to the end)."""
                if order is None:
                    return None
                if address is not None:
                    return address.next_bound(conn, conditions, params, low, batch_size)
                return next_bound(
                    source,
                    conn,
                    base_sql,
                    conditions,
                    params,
                    order.key,
                    low,
                    batch_size,
                    declared=order.declared,
                )

            first_hi = bound_after(position)
            # A source that fits in one batch has nothing to resume: it keeps
            # the one-transaction path (no stage table, no second write).
            staged = key is not None and (resume is not None or first_hi is not None)

            def build(
                extra: list[str], bound: dict[str, Any], describe: bool, base: str = base_sql
            ) -> tuple[Any, list]:
                compiled = compile_pushdown(
                    d,
                    where_sql(base, conditions + extra),
                    {**params, **bound},
                    columns,
                    transformations,
                    run_params,
                    enabled=spec.pushdown,
                )
                out = compiled.columns
                # Real result types (PostgreSQL/MySQL know them exactly); SQLite
                # knows none for expressions, so keep what the compiler tracked.
                if describe and source.typed_values:
                    described = source.describe_query(conn, compiled.sql, compiled.params)
                    out = [
                        dc if dc.type != "text" or tc.type == "text" else tc
                        for dc, tc in zip(described, compiled.columns, strict=True)
                    ]
                if compiled.rest:
                    # Read only the columns the steps left for batches can use.
                    needed = needed_columns(out, compiled.rest)
                    if needed is not None and len(needed) < len(out):
                        keep = set(needed)
                        compiled.sql = (
                            f"SELECT {', '.join(d.quote(n) for n in needed)}"  # nosec B608
                            f" FROM ({compiled.sql}) AS _dd_cols"
                        )
                        out = [c for c in out if c.name in keep]
                return compiled, out

            compiled, out_columns = build([], {}, True)
            if compiled.sql != base_sql or compiled.rest:
                ctx.log(
                    f"source query: {compiled.sql}"
                    + (f" (+{len(compiled.rest)} step(s) on batches)" if compiled.rest else ""),
                    "DEBUG",
                )
            transformer = BatchTransformer(
                out_columns,
                compiled.rest,
                run_params,
                offset=len(transformations) - len(compiled.rest),
            )
            final_columns = transformer.columns
            info = {"watermark": json_value(watermark)}

            # The pair's fast path, when the source kind has one to the
            # destination's (PostgreSQL → PostgreSQL: raw COPY bytes).
            fast = (
                source.fast_copy_to(destination)
                if spec.passthrough and isinstance(sink, SqlSink)
                else None
            )
            lines = (
                TextLineTransformer.build(
                    out_columns,
                    compiled.rest,
                    offset=len(transformations) - len(compiled.rest),
                    run_params=run_params,
                )
                if fast is not None and fast.accepts_lines and compiled.rest
                else None
            )
            raw = fast is not None and (not compiled.rest or lines is not None)
            parse = [] if source.typed_values else parsers(out_columns)

            def copy_rows(batch: Any) -> tuple[int, int]:
                """Rows of one source query into the open transaction: (read, written)."""
                if raw:
                    assert fast is not None and isinstance(sink, SqlSink)  # nosec B101 - narrows the type; nothing relies on it at run time
                    copied = fast(ctx, conn, batch.sql, batch.params, sink, final_columns, lines)
                    return copied, copied
                n_read = n_written = 0
                # Reads overlap writes (connectors.copy.overlap).
                batches = prefetched(
                    source.iter_batches(conn, batch.sql, batch.params, spec.fetch_rows)
                )
                with closing(batches):
                    for rows in batches:
                        n_read += len(rows)
                        if text:
                            # Values as the source gave them (see below).
                            sink.write_text(rows, types)
                            n_written += len(rows)
                            ctx.check()
                            continue
                        rows = parse_batch(rows, parse, source.where())
                        if transformer:
                            rows = transformer.apply(rows)
                        sink.write(rows)
                        n_written += len(rows)
                        ctx.check()
                return n_read, n_written

            stage = sink if staged and key else None
            if stage is not None:
                stage.begin(final_columns, staged=True, resume=resume)
            else:
                sink.begin(final_columns)
            if raw and isinstance(sink, SqlSink) and sink.projects:
                # Source columns dropped (destination.schema discard): the
                # raw COPY cannot leave them out, the batch path does.
                raw = False
            # A source whose values are text (SQLite) into a destination that
            # checks text itself (PostgreSQL's COPY): no parsing on the way,
            # unless steps left for batches need typed values.
            text = (
                spec.passthrough
                and not raw
                and not compiled.rest
                and not source.typed_values
                and sink.takes_text()
            )
            if text:
                ctx.log("values go in as the source's text (checked by the destination)", "DEBUG")
            types = [c.type for c in final_columns]
            resumed_from = int(resume["rows"]) if resume else 0
            try:
                if stage is not None and key:
                    read, written = 0, resumed_from
                    low, high = position, first_hi
                    while True:
                        if address is not None:
                            # The range is on the table itself (its row
                            # address is no column of the rows read).
                            ranged, bound = address.range_sql(low, high)
                            batch = build([], bound, False, ranged)[0]
                        else:
                            extra, bound = key_range(d, key, low, high)
                            batch = build(extra, bound, False)[0]
                        n_read, n_written = copy_rows(batch)
                        read, written = read + n_read, written + n_written
                        ctx.check()
                        if high is None:
                            break
                        state = {"position": [json_value(v) for v in high], **info}
                        if address_state is not None:
                            state["address"] = address_state
                        stage.commit_batch(written, state)
                        checkpoint(
                            ctx, {"unit": stage.unit.index, "batch": stage.batch, "rows": written}
                        )
                        low = high
                        high = bound_after(low)
                else:
                    read, written = copy_rows(compiled)
                tail = transformer.finish()
                sink.write(tail)
                written += len(tail)
                ctx.check()
                sink.commit(written, info)
            except BaseException:
                sink.rollback()
                raise
            result = {
                "rows_read": read,
                "rows_written": written,
                "skipped": False,
                "passthrough": raw,
                "watermark": info["watermark"],
            }
            if stage is not None:
                result["resumed_from"] = resumed_from
            elif not_resumable:
                result["not_resumable"] = not_resumable
            return result
    except ConnectorError as exc:
        # The sink names the destination in its errors; the source connection's
        # own are named here (a definition problem names neither).
        if str(exc).startswith(source.where()):
            raise side_error("source", exc) from exc
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if is_driver_error(exc):
            if getattr(exc, "copy_side", None) == "destination" and isinstance(
                destination, SqlConnector
            ):
                # The fast path's destination half (connectors.base.on_destination).
                raise side_error("destination", destination.map_error(exc)) from exc
            raise side_error("source", source.map_error(exc)) from exc
        raise
