"""Running one claimed task run inside a worker process.

A watchdog thread renews the lease every HEARTBEAT_SECONDS and polls the
execution's status every second. When the run is cancelled, times out or
loses its lease, the watchdog sets a flag and fires the cancel hooks the
task registered (which stop the query in the database); the task sees the
flag at its next ``ctx.check()`` and stops, rolling back its current batch.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection as django_connection
from django.db import connections, transaction

from connectors.base import ConnectorError
from connectors.models import Connection
from connectors.paths import connection_path_problem_at_use
from pipelines import checkpoints
from pipelines.assets.services import events_record, produced
from pipelines.engine.attempts import (
    task_run_cancelled,
    task_run_claim,
    task_run_fail,
    task_run_succeed,
    task_run_wait,
)
from pipelines.engine.task_runs import task_run_heartbeat, task_run_status
from pipelines.engine.transitions import model_loaded, sql_column, sql_columns, sql_field
from pipelines.models import ConnectionBinding, ExecutionStatus, TaskLogLine, TaskRun, Watermark
from pipelines.outputs import output_of, with_upstream_outputs
from pipelines.services.schedule import assets_trigger_after
from pipelines.tasktypes.base import (
    LeaseLost,
    TaskCancelled,
    TaskFailed,
    TaskNotReady,
    TaskTimedOut,
)
from pipelines.tasktypes.registry import task_type

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0  # seconds between status polls: bounds cancel latency
# The exit status of a worker process ended because its task ignored a stop,
# and the start of the record it leaves on django-q2's logger first: the
# supervised worker (ops.supervision) then knows it is no death to restart for.
EXIT_STUCK = 75
ENDING_STUCK_WORKER = "Ending this worker process: its task ignored a stop"


def worker_name() -> str:
    return f"worker:{socket.gethostname()}:{os.getpid()}"


def bound_connection(version_pk: Any, name: str) -> Connection | None:
    """The connection that version ``version_pk`` bound as ``name``, read now; None if gone.

    One hand-written statement (the ORM built this join per task, ~2 ms of
    CPU). Nothing is cached: an edit, rename or delete made since the last
    task is seen by the next one.
    """
    quote = django_connection.ops.quote_name
    names, columns = sql_columns(Connection, "c")
    binding = quote(ConnectionBinding._meta.db_table)
    sql = (
        f"SELECT {columns} FROM {binding} b"  # nosec B608 - names from model metadata, values bound
        f" JOIN {quote(Connection._meta.db_table)} c"
        f" ON c.{sql_column(Connection, 'id')} = b.{sql_column(ConnectionBinding, 'connection_id')}"
        f" WHERE b.{sql_column(ConnectionBinding, 'version_id')} = %s"
        f" AND b.{sql_column(ConnectionBinding, 'name')} = %s"
    )
    version = sql_field(ConnectionBinding, "version_id").get_db_prep_value(
        version_pk, django_connection
    )
    with django_connection.cursor() as cursor:
        cursor.execute(sql, [version, name])
        row = cursor.fetchone()
    if row is None:
        return None
    conn: Connection = model_loaded(Connection, names, row)
    return conn


class RunContext:
    """The TaskContext a task type sees (pipelines.tasktypes.base.TaskContext)."""

    def __init__(self, task_run: TaskRun) -> None:
        execution = task_run.execution
        self.execution_id = str(execution.pk)
        self.pipeline_id = str(execution.pipeline_id)
        self.pipeline_name = execution.pipeline.name
        self.task_id = str(task_run.pk)
        self.task_name = task_run.task_name
        self.attempt = task_run.attempt
        # Attempts that may still follow this one (a copy stages only if some may).
        self.retries_left = max(task_run.max_retries - task_run.retry_count, 0)
        self.task = task_run.spec
        self.params = dict(execution.parameters)
        self.metrics: dict[str, Any] = {}
        self.output: Any = None
        self.chunk = (
            (task_run.chunk_index, task_run.chunk_count)
            if task_run.chunk_count is not None and task_run.chunk_index is not None
            else None
        )
        self._definition_task = task_run.definition_task
        self._pipeline_pk = execution.pipeline_id
        self._version_pk = execution.version_id
        self._started = time.monotonic()
        self._timeout = float(self.task.get("timeout", 3600))
        self._lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self._log_seq = 0
        self._stop_reason: BaseException | None = None
        self._stopped_at: float | None = None
        self._cancel_hooks: list[Any] = []
        self._watermark: Any = None
        self._connectors: list[Any] = []

    # --- what task types call -------------------------------------------
    def connection(self, name: str) -> Any:
        """The connection ``name`` as the execution's version bound it (by id, SPEC §9).

        Never looked up by name: a connection renamed since is still found,
        and one deleted and made again under the same name is not used.
        """
        conn = bound_connection(self._version_pk, name)
        if conn is None:
            raise TaskFailed(ConnectionBinding.gone(name))
        # A file connection saved before paths were isolated may overlap
        # another's (SPEC §10): it reaches nothing until that is resolved.
        overlap = connection_path_problem_at_use(conn)
        if overlap:
            raise TaskFailed(f"connection {name!r}: config.path {overlap}")
        connector = conn.connector()
        self._connectors.append(connector)
        return connector

    def log(self, message: str, level: str = "INFO") -> None:
        with self._lock:
            limit = min(settings.TASK_LOG_MAX_LINES, TaskLogLine.SEQ_PER_ATTEMPT - 1)
            if self._log_seq > limit:
                return
            if self._log_seq == limit:
                message, level = "… log truncated (TASK_LOG_MAX_LINES reached)", "WARNING"
            self._log.append(
                {
                    "seq": self.attempt * TaskLogLine.SEQ_PER_ATTEMPT + self._log_seq,
                    "at": datetime.now(UTC),
                    "level": level[:10],
                    "message": str(message)[:10000],
                }
            )
            self._log_seq += 1

    def check(self) -> None:
        if self._stop_reason is None and self.seconds_left() <= 0:
            self.stop(TaskTimedOut(f"timed out after {self._timeout:g}s"))
        if self._stop_reason is not None:
            raise self._stop_reason

    def seconds_left(self) -> float:
        return self._timeout - (time.monotonic() - self._started)

    def on_cancel(self, hook: Any) -> None:
        """Register a callable that stops the running statement (called from the watchdog).

        If the run was already stopped, the hook fires at once: a statement
        started after the cancel must not run to its end.
        """
        self._cancel_hooks.append(hook)
        if self._stop_reason is not None:
            try:
                hook()
            except Exception:
                logger.warning("cancel hook failed", exc_info=True)

    def remove_cancel(self, hook: Any) -> None:
        if hook in self._cancel_hooks:
            self._cancel_hooks.remove(hook)

    def checkpoint_load(self) -> dict[str, Any] | None:
        return checkpoints.load(self.execution_id, self.task_id)

    def checkpoint_save(self, state: dict[str, Any]) -> None:
        checkpoints.save(self.execution_id, self.task_id, state)

    def watermark_load(self) -> Any:
        row = Watermark.objects.filter(
            pipeline_id=self._pipeline_pk, task_name=self._definition_task
        ).first()
        return row.value if row is not None else None

    def watermark_stage(self, value: Any) -> None:
        column = (self.task.get("incremental") or {}).get("column", "")
        self._watermark = {"column": column, "value": value}

    # --- what the runner and watchdog use ---------------------------------
    def stop(self, reason: BaseException) -> None:
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        self._stopped_at = time.monotonic()
        for hook in list(self._cancel_hooks):
            try:
                hook()
            except Exception:
                logger.warning("cancel hook failed", exc_info=True)

    def take_log(self) -> list[dict[str, Any]]:
        with self._lock:
            lines, self._log = self._log, []
        return lines

    def close(self) -> None:
        for connector in self._connectors:
            close = getattr(connector, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.debug("connector close failed", exc_info=True)


class Watchdog(threading.Thread):
    def __init__(
        self,
        ctx: RunContext,
        *,
        grace: float | None = None,
        on_stuck: Callable[[], None] | None = None,
    ) -> None:
        """``on_stuck`` is called when the run is still going ``grace`` seconds after a stop."""
        super().__init__(daemon=True, name=f"watchdog-{ctx.task_id}")
        self.ctx = ctx
        self.done = threading.Event()
        self.grace = grace
        self.on_stuck = on_stuck

    def run(self) -> None:
        last_beat = time.monotonic()
        try:
            while not self.done.wait(WATCH_INTERVAL):
                ctx = self.ctx
                stopped = ctx._stopped_at
                if self.grace is not None and stopped is not None and self.on_stuck is not None:
                    if time.monotonic() - stopped >= self.grace:
                        self.on_stuck()  # records the end; in a worker, never returns
                        return
                if ctx.seconds_left() <= 0:
                    ctx.stop(TaskTimedOut(f"timed out after {ctx._timeout:g}s"))
                if time.monotonic() - last_beat >= settings.HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    lines = ctx.take_log()
                    try:
                        status = task_run_heartbeat(
                            task_id=ctx.task_id, attempt=ctx.attempt, log_lines=lines
                        )
                    except LeaseLost as exc:
                        ctx.stop(exc)
                        continue
                else:
                    task_status, attempt, status = task_run_status(task_id=ctx.task_id)
                    if attempt != ctx.attempt or task_status != "running":
                        ctx.stop(LeaseLost(f"attempt {ctx.attempt} no longer owns the run"))
                        continue
                if status in {ExecutionStatus.CANCELLING, ExecutionStatus.CANCELLED}:
                    ctx.stop(TaskCancelled("execution cancelled"))
        except Exception:
            logger.exception("watchdog of task %s failed", self.ctx.task_id)
        finally:
            connections.close_all()  # this thread's own connection


def run_task(task_id: str) -> str:
    """Claim and run one task run; returns its final status for this attempt.

    When it succeeds and a downstream task became ready, this worker claims
    and runs that one too (no broker hop), for up to
    FOLLOW_DOWNSTREAM_SECONDS; other ready tasks go through the broker to
    any worker as usual.
    """
    worker = worker_name()
    task_run: TaskRun | None = task_run_claim(task_id=task_id, worker=worker)
    if task_run is None:
        return "not claimed"
    started = time.monotonic()
    outcome = ""
    while task_run is not None:
        follow = time.monotonic() - started < settings.FOLLOW_DOWNSTREAM_SECONDS
        outcome, task_run = _run_one(task_run, worker, follow=follow)
    return outcome


def _run_one(task_run: TaskRun, worker: str, *, follow: bool) -> tuple[str, TaskRun | None]:
    ctx = RunContext(task_run)
    ctx.log(f"attempt {ctx.attempt} started on {worker}")
    grace = task_type(task_run.task_type).stop_grace
    watchdog = Watchdog(
        ctx, grace=grace, on_stuck=lambda: _end_stuck(ctx, task_run, worker, grace or 0)
    )
    watchdog.start()
    try:
        return _run(ctx, task_run, worker, follow=follow)
    finally:
        watchdog.done.set()
        watchdog.join(timeout=5)
        ctx.close()


def _end_stuck(ctx: RunContext, task_run: TaskRun, worker: str, grace: float) -> None:
    """A run told to stop ``grace`` s ago still runs (code that ignores ``cancelled()``).

    Its end is recorded as the stop says (cancelled, or failed by its
    timeout and retried per ``retries``), then this worker process is ended:
    nothing else stops a thread running code that is not ours. django-q2's
    sentinel starts a new worker process. Outside a worker process (a test
    calling ``run_task`` itself) the process is left running; the run's
    later reports are refused, its end being recorded. When the record is
    refused, the run already left ``running``: the code returned meanwhile
    and its own report won, so the process is not ended.
    """
    reason = ctx._stop_reason
    pid = os.getpid()
    ending = multiprocessing.parent_process() is not None
    ctx.log(
        f"still running {grace:g}s after it was told to stop"
        + (f": ending worker process {pid}" if ending else ""),
        "ERROR",
    )
    why = f"{reason}; the task ignored it for {grace:g}s" + (
        " and its worker process was ended" if ending else ""
    )
    refused = False
    try:
        if isinstance(reason, TaskCancelled):
            refused = not task_run_cancelled(
                task_run=task_run,
                attempt=ctx.attempt,
                actor=worker,
                reason=why,
                log_lines=ctx.take_log(),
                metrics=ctx.metrics,
            )
        elif isinstance(reason, TaskTimedOut):
            refused = (
                task_run_fail(
                    task_run=task_run,
                    attempt=ctx.attempt,
                    error=why,
                    transient=True,
                    actor=worker,
                    base_delay=float(ctx.task.get("retry_delay", 10)),
                    metrics=ctx.metrics,
                    log_lines=ctx.take_log(),
                )
                is None
            )
        # LeaseLost: another attempt owns the run; this one writes nothing.
    except Exception:
        logger.exception("could not record the end of stuck task %s", ctx.task_id)
    finally:
        if ending and not refused:
            logging.getLogger("django-q").error(
                "%s (task run %s, %gs, pid %s)", ENDING_STUCK_WORKER, ctx.task_id, grace, pid
            )
            connections.close_all()
            os._exit(EXIT_STUCK)


def _run(
    ctx: RunContext, task_run: TaskRun, worker: str, *, follow: bool
) -> tuple[str, TaskRun | None]:
    base_delay = float(ctx.task.get("retry_delay", 10))
    try:
        # A cancel or timeout noticed after the work committed is not reported:
        # the task did finish, and saying "cancelled" would misstate the data.
        implementation = task_type(task_run.task_type)
        ctx.task = with_upstream_outputs(task_run, ctx.task)
        implementation.run(ctx)
        output = output_of(implementation, ctx)
    except LeaseLost:
        logger.warning(
            "task %s attempt %s lost its lease; writing nothing", ctx.task_id, ctx.attempt
        )
        return "lease lost", None
    except TaskCancelled as exc:
        ctx.log(f"cancelled: {exc}", "WARNING")
        task_run_cancelled(
            task_run=task_run,
            attempt=ctx.attempt,
            actor=worker,
            reason=str(exc),
            log_lines=ctx.take_log(),
            metrics=ctx.metrics,
        )
        return "cancelled", None
    except TaskNotReady as not_ready:
        # A sensor's condition is false: the run waits, and this worker is free.
        ctx.log(f"not ready: {not_ready}; next check in {not_ready.check_in:g}s")
        waiting = task_run_wait(
            task_run=task_run,
            attempt=ctx.attempt,
            check_in=not_ready.check_in,
            actor=worker,
            reason=str(not_ready),
            log_lines=ctx.take_log(),
            metrics=ctx.metrics,
        )
        return str(waiting or "lease lost"), None
    except Exception as raised:  # every failure is recorded
        failure: BaseException = raised
        if ctx._stop_reason is not None and not isinstance(failure, TaskTimedOut):
            # The query was stopped by the watchdog: report why, not the driver's error.
            failure = ctx._stop_reason
            if isinstance(failure, LeaseLost):
                return "lease lost", None
            if isinstance(failure, TaskCancelled):
                task_run_cancelled(
                    task_run=task_run,
                    attempt=ctx.attempt,
                    actor=worker,
                    reason=str(failure),
                    log_lines=ctx.take_log(),
                    metrics=ctx.metrics,
                )
                return "cancelled", None
        transient = isinstance(failure, TaskTimedOut) or bool(getattr(failure, "transient", False))
        if isinstance(failure, (TaskFailed, ConnectorError, TaskTimedOut)):
            message = str(failure)
        else:
            message = f"{type(failure).__name__}: {failure}"
            ctx.log(traceback.format_exc(limit=8), "ERROR")
        ctx.log(f"failed: {message}", "ERROR")
        try:
            status = task_run_fail(
                task_run=task_run,
                attempt=ctx.attempt,
                error=message,
                transient=transient,
                actor=worker,
                base_delay=base_delay,
                metrics=ctx.metrics,
                log_lines=ctx.take_log(),
            )
        finally:
            if not django_connection.is_usable():
                django_connection.close()
        return str(status or "lease lost"), None
    ctx.log("succeeded")
    try:
        # A task that writes assets: their events commit with the success, or neither.
        with transaction.atomic() if produced(task_run) else nullcontext():
            next_run = task_run_succeed(
                task_run=task_run,
                attempt=ctx.attempt,
                metrics=ctx.metrics,
                output=output,
                log_lines=ctx.take_log(),
                watermark=ctx._watermark,
                worker=worker,
                follow=follow,
            )
            events = events_record(task_run)
    except LeaseLost:
        logger.warning(
            "task %s attempt %s finished after losing its lease", ctx.task_id, ctx.attempt
        )
        return "lease lost", None
    if events:
        assets_trigger_after(events)
    return "success", next_run
