"""Pipeline metrics for Prometheus, the same from every web process on any machine.

Design (docs/operations.md, "Metrics across machines"): executions run in
worker processes, possibly on other machines, so no in-process counter of
the web can know about them. The database already records every outcome,
and finished executions and task runs never change again, so the counters
are *derived from the database at scrape time*:

- Everything created before a *horizon* (ten minutes before the oldest
  active execution, or before now) is final. Its totals are aggregated once
  and kept in the shared cache (Redis, or the file cache of the embedded
  default) with the horizon they cover. Each refresh adds only the rows
  between the old and the new horizon.
- Rows created after the horizon (the last minutes, plus whatever is still
  running) are aggregated on every refresh through the ``created_at``
  index, so a scrape costs a few indexed range queries whatever the size
  of the history.
- The result is memoized per process for ``CACHE_SECONDS``.

A counter kept this way never goes down when old executions are deleted
(the base keeps them), agrees between processes (they share one base) and
needs nothing from the workers but the rows they write anyway. Gauges
(queue depth, running executions, worker heartbeats) are read live.

Connection-pool statistics exist only inside the worker processes that
own the pools: each worker process publishes its pools to the shared cache
every ``POOL_PUBLISH_SECONDS`` from a daemon thread, and the scrape reads
what live processes published.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import (
    BigIntegerField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Min,
    Q,
    Sum,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone
from django_q.signals import post_execute_in_worker, pre_execute
from django_q.status import Stat
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from connectors import pools
from core import logging as log_context
from pipelines import alerts, signals
from pipelines.models import (
    EXECUTION_HOLDING_SLOT,
    TASK_FINISHED,
    Execution,
    ExecutionStatus,
    TaskRun,
    TaskRunStatus,
)
from pipelines.queue import RUN_TASK, queue_depth

logger = logging.getLogger(__name__)

# Upper bounds (seconds) of the run duration histogram: sub-second no-op
# runs up to six-hour copies (TASK_TIMEOUT_MAX's default).
DURATION_BUCKETS: tuple[float, ...] = (
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    21600,
)
# How long one computed set of pipeline metrics serves scrapes in a process.
CACHE_SECONDS = 10.0
# Rows are stamped by the clock of the process that creates them (a web or a
# worker on another machine) and become visible when their transaction
# commits. Both happen well within this margin (clocks kept by NTP), so every
# row created before the horizon is visible when the base is advanced.
HORIZON_MARGIN = timedelta(minutes=10)
BASE_KEY = "ops:metrics:base:v1"
LAST_FINISHED_KEY = "ops:last_task_finished"
POOLS_INDEX_KEY = "ops:pools:index"
POOL_PUBLISH_SECONDS = 10.0
# A process that has not published for this long is taken as gone.
POOL_STALE_SECONDS = 60.0
STALL_SECONDS = 300

# Finished task statuses in a fixed order (they name annotations and labels).
_TASK_FINISHED = tuple(sorted(status.value for status in TASK_FINISHED))


# --- Aggregates -------------------------------------------------------------
@dataclass
class Totals:
    """Counter values: executions by (pipeline, status), tasks by (type, status)."""

    # (pipeline name, status) -> [count, duration sum, bucket counts..., rows read, rows written]
    executions: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # (task type, status) -> count; status "up_for_retry" counts retries made.
    tasks: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, other: Totals) -> Totals:
        out = Totals(
            {k: list(v) for k, v in self.executions.items()},
            dict(self.tasks),
        )
        for key, values in other.executions.items():
            mine = out.executions.setdefault(key, [0.0] * len(values))
            for i, value in enumerate(values):
                mine[i] += value
        for key, count in other.tasks.items():
            out.tasks[key] = out.tasks.get(key, 0) + count
        return out

    def dump(self) -> dict[str, Any]:
        return {
            "executions": [[p, s, v] for (p, s), v in self.executions.items()],
            "tasks": [[t, s, n] for (t, s), n in self.tasks.items()],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Totals:
        return cls(
            {(p, s): list(v) for p, s, v in data["executions"]},
            {(t, s): int(n) for t, s, n in data["tasks"]},
        )


def _created_range(start: datetime | None, end: datetime | None) -> Q:
    q = Q()
    if start is not None:
        q &= Q(created_at__gte=start)
    if end is not None:
        q &= Q(created_at__lt=end)
    return q


def aggregate(start: datetime | None, end: datetime | None) -> Totals:
    """Counter contributions of executions created in [start, end) and their task runs."""
    duration = ExpressionWrapper(
        F("ended_at") - Coalesce(F("started_at"), F("created_at")), output_field=DurationField()
    )
    buckets = {
        f"le_{i}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(DURATION_BUCKETS)
    }
    rows = (
        Execution.objects.finished()
        .filter(_created_range(start, end))
        .annotate(duration=duration)
        .values("pipeline__name", "status")
        .annotate(
            n=Count("pk"),
            duration_sum=Sum("duration"),
            rows_read=Sum(Cast(KeyTextTransform("rows_read", "metrics"), BigIntegerField())),
            rows_written=Sum(Cast(KeyTextTransform("rows_written", "metrics"), BigIntegerField())),
            **buckets,
        )
        .order_by()
    )
    totals = Totals()
    for row in rows:
        seconds = row["duration_sum"].total_seconds() if row["duration_sum"] else 0.0
        totals.executions[(row["pipeline__name"], row["status"])] = [
            float(row["n"]),
            seconds,
            *(float(row[f"le_{i}"]) for i in range(len(DURATION_BUCKETS))),
            float(row["rows_read"] or 0),
            float(row["rows_written"] or 0),
        ]
    # Task runs through their execution's created_at: the same window, and
    # the join walks the (execution, status) index from the few executions.
    window = Q()
    if start is not None:
        window &= Q(execution__created_at__gte=start)
    if end is not None:
        window &= Q(execution__created_at__lt=end)
    task_rows = (
        TaskRun.objects.filter(window)
        .values("task_type")
        .annotate(
            **{status: Count("pk", filter=Q(status=status)) for status in _TASK_FINISHED},
            retries=Coalesce(Sum("retry_count"), Value(0), output_field=IntegerField()),
        )
        .order_by()
    )
    for row in task_rows:
        for status in _TASK_FINISHED:
            if row[status]:
                totals.tasks[(row["task_type"], status)] = int(row[status])
        if row["retries"]:
            # Each retry made was one move into up_for_retry (task_run_fail).
            totals.tasks[(row["task_type"], "up_for_retry")] = int(row["retries"])
    return totals


def _horizon(now: datetime) -> datetime:
    """Rows created before this are final: no active execution is older."""
    oldest = Execution.objects.active().aggregate(oldest=Min("created_at"))["oldest"]
    return min(oldest or now, now) - HORIZON_MARGIN


def _advanced_base() -> tuple[Totals, datetime] | None:
    """The stored base, built or advanced to the horizon now; None when the cache is down."""
    now = timezone.now()
    horizon = _horizon(now)
    try:
        stored = cache.get(BASE_KEY)
    except Exception:
        logger.warning("metrics base unavailable from the cache", exc_info=True)
        return None
    if stored is None:
        base, until = aggregate(None, horizon), horizon
        _store_base(base, until)
    else:
        base, until = Totals.load(stored["totals"]), datetime.fromisoformat(stored["until"])
        if horizon > until:
            # Advance: the rows between the old and the new horizon became final.
            base = base.add(aggregate(until, horizon))
            until = horizon
            _store_base(base, until)
    return base, until


def totals_now() -> Totals:
    """Counter totals over all history: cached final part + live recent part."""
    found = _advanced_base()
    if found is None:  # the cache is down: compute everything, slower but right
        return aggregate(None, None)
    base, until = found
    return base.add(aggregate(until, None))


def covered_until() -> datetime | None:
    """Executions created before this are counted in the stored base (advanced first).

    Deleting them cannot lower a counter. None when no base is stored (the
    cache is down or refused it): then every counter is computed from the
    rows, and deleting any would lower it.
    """
    if _advanced_base() is None:
        return None
    try:
        stored = cache.get(BASE_KEY)
    except Exception:
        return None
    return None if stored is None else datetime.fromisoformat(stored["until"])


def _store_base(base: Totals, until: datetime) -> None:
    try:
        # No expiry: the base is the memory of counters; rebuilt if lost.
        cache.set(BASE_KEY, {"totals": base.dump(), "until": until.isoformat()}, None)
    except Exception:
        logger.warning("could not store the metrics base", exc_info=True)


# --- Live gauges ------------------------------------------------------------
def worker_clusters() -> list[dict[str, Any]]:
    """Live django-q2 clusters: ``{cluster, host, age}`` from their status reports."""
    now = timezone.now()
    result = []
    for stat in Stat.get_all():
        stamp = getattr(stat, "timestamp", None)
        if stamp is None:
            continue
        result.append(
            {
                "cluster": str(getattr(stat, "cluster_id", "")),
                "host": str(getattr(stat, "host", "")),
                "age": max(0.0, (now - stamp).total_seconds()),
            }
        )
    return result


def note_task_finished() -> None:
    """Remember when a task last finished (worker side; read by the stall check)."""
    try:
        cache.set(LAST_FINISHED_KEY, time.time(), None)
    except Exception:
        logger.debug("could not record the last finish", exc_info=True)


def seconds_since_last_finish() -> float | None:
    """Seconds since a task run last finished anywhere; None when none ever did."""
    try:
        stamp = cache.get(LAST_FINISHED_KEY)
    except Exception:
        stamp = None
    if stamp is None:
        # The cache lost it (restart): ask the database once, remember the answer.
        last = TaskRun.objects.finished().aggregate(last=Max("ended_at"))["last"]
        if last is None:
            return None
        stamp = last.timestamp()
        try:
            cache.add(LAST_FINISHED_KEY, stamp, None)
        except Exception:  # nosec B110 - metrics must not fail the request
            pass
    return max(0.0, time.time() - float(stamp))


def stall_state() -> dict[str, Any]:
    """``{stalled, oldest_queued_seconds, since_last_finish_seconds}``.

    Stalled: a task run has waited in the queue for STALL_SECONDS and no
    task run finished anywhere in that time. The first test walks the
    (status, queued_at) index; the second runs only when the first holds.
    """
    oldest = (
        TaskRun.objects.filter(status=TaskRunStatus.QUEUED, queued_at__isnull=False)
        .order_by("queued_at")
        .values_list("queued_at", flat=True)
        .first()
    )
    waited = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    since = seconds_since_last_finish() if waited >= STALL_SECONDS else None
    stalled = waited >= STALL_SECONDS and (since is None or since >= STALL_SECONDS)
    return {
        "stalled": stalled,
        "oldest_queued_seconds": round(waited, 1),
        "since_last_finish_seconds": None if since is None else round(since, 1),
    }


# --- Connector pools, published by worker processes ------------------------
def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def publish_pools() -> None:
    """Write this process's connector pool statistics to the shared cache."""
    me = process_name()
    cache.set(f"ops:pools:{me}", {"at": time.time(), "pools": pools.stats()}, POOL_STALE_SECONDS)
    index = cache.get(POOLS_INDEX_KEY) or {}
    if me not in index:
        # Read-modify-write: a concurrent publisher may drop this entry; it is
        # put back on the next publish, since each publisher checks again.
        index[me] = time.time()
        cache.set(POOLS_INDEX_KEY, index, None)


def published_pools() -> list[tuple[str, dict[str, Any]]]:
    """(process, pool stats) of processes that published recently; prunes the rest."""
    index = cache.get(POOLS_INDEX_KEY) or {}
    if not index:
        return []
    found = cache.get_many([f"ops:pools:{name}" for name in index])
    result: list[tuple[str, dict[str, Any]]] = []
    gone = []
    for name in index:
        entry = found.get(f"ops:pools:{name}")
        if entry is None or time.time() - entry["at"] > POOL_STALE_SECONDS:
            gone.append(name)
            continue
        result.extend((name, pool) for pool in entry["pools"])
    if gone:
        fresh = cache.get(POOLS_INDEX_KEY) or {}
        for name in gone:
            fresh.pop(name, None)
        cache.set(POOLS_INDEX_KEY, fresh, None)
    return result


_publisher_lock = threading.Lock()
_publisher_pid: int | None = None


def ensure_pool_publisher() -> None:
    """Start this process's publisher thread once (after any fork)."""
    global _publisher_pid
    if _publisher_pid == os.getpid():
        return
    with _publisher_lock:
        if _publisher_pid == os.getpid():
            return
        _publisher_pid = os.getpid()
        threading.Thread(target=_publish_loop, name="pool-stats", daemon=True).start()


def _publish_loop() -> None:
    while True:
        try:
            publish_pools()
        except Exception:
            logger.debug("could not publish pool statistics", exc_info=True)
        time.sleep(POOL_PUBLISH_SECONDS)


# --- The collector ----------------------------------------------------------
class PipelineCollector(Collector):
    """Yields the ``datadog_*`` families; counters memoized for CACHE_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Totals | None = None
        self._at = 0.0

    def totals(self) -> Totals:
        with self._lock:
            if self._totals is None or time.monotonic() - self._at > CACHE_SECONDS:
                self._totals = totals_now()
                self._at = time.monotonic()
            return self._totals

    def reset(self) -> None:
        """Forget the memoized totals (tests, and after a restore)."""
        with self._lock:
            self._totals = None

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._gauges()

    def _counters(self) -> Iterator[Metric]:
        totals = self.totals()
        runs = CounterMetricFamily(
            "datadog_pipeline_executions",
            "Finished pipeline executions by pipeline and final status.",
            labels=["pipeline", "status"],
        )
        hist = HistogramMetricFamily(
            "datadog_pipeline_execution_duration_seconds",
            "Duration of finished executions (start to end; queue wait excluded).",
            labels=["pipeline"],
        )
        rows = CounterMetricFamily(
            "datadog_rows", "Rows moved by finished executions.", labels=["direction"]
        )
        per_pipeline: dict[str, list[float]] = {}
        rows_read = rows_written = 0.0
        for (pipeline, status), values in sorted(totals.executions.items()):
            runs.add_metric([pipeline, status], values[0])
            mine = per_pipeline.setdefault(pipeline, [0.0] * (len(DURATION_BUCKETS) + 2))
            for i in range(len(DURATION_BUCKETS) + 2):
                mine[i] += values[i]
            rows_read += values[-2]
            rows_written += values[-1]
        for pipeline, values in per_pipeline.items():
            count, total = values[0], values[1]
            buckets = [
                (_bound(bound), values[2 + i]) for i, bound in enumerate(DURATION_BUCKETS)
            ] + [("+Inf", count)]
            hist.add_metric([pipeline], buckets, sum_value=total)
        rows.add_metric(["read"], rows_read)
        rows.add_metric(["written"], rows_written)
        tasks = CounterMetricFamily(
            "datadog_task_runs",
            "Task runs that finished, by type and status (up_for_retry: retries made).",
            labels=["task_type", "status"],
        )
        for (task_type, status), count in sorted(totals.tasks.items()):
            tasks.add_metric([task_type, status], count)
        yield from (runs, hist, tasks, rows)

    def _gauges(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "datadog_queue_depth", "Messages waiting in the broker.", value=queue_depth()
        )
        counts = dict(
            Execution.objects.active().values_list("status").annotate(n=Count("pk")).order_by()
        )
        yield GaugeMetricFamily(
            "datadog_executions_running",
            "Executions running (or cancelling) now.",
            value=sum(counts.get(s, 0) for s in EXECUTION_HOLDING_SLOT),
        )
        yield GaugeMetricFamily(
            "datadog_executions_queued",
            "Executions waiting for a max_active_runs slot.",
            value=counts.get(ExecutionStatus.QUEUED, 0),
        )
        oldest_beat = TaskRun.objects.filter(status=TaskRunStatus.RUNNING).aggregate(
            oldest=Min("heartbeat_at")
        )["oldest"]
        yield GaugeMetricFamily(
            "datadog_task_heartbeat_max_age_seconds",
            "Age of the oldest heartbeat among running task runs (0 when none run).",
            value=(timezone.now() - oldest_beat).total_seconds() if oldest_beat else 0.0,
        )
        yield from self._workers()
        stall = stall_state()
        yield GaugeMetricFamily(
            "datadog_queue_stalled",
            "1 when a task run waited 5 minutes and nothing finished in that time.",
            value=1.0 if stall["stalled"] else 0.0,
        )
        yield GaugeMetricFamily(
            "datadog_queue_oldest_seconds",
            "Age of the oldest queued task run (0 when none waits): the queue's lag.",
            value=stall["oldest_queued_seconds"],
        )
        yield from self._pools()

    def _workers(self) -> Iterator[Metric]:
        try:
            clusters = worker_clusters()
        except Exception:
            logger.warning("could not read worker cluster status", exc_info=True)
            clusters = []
        alive = GaugeMetricFamily(
            "datadog_worker_clusters", "Worker clusters that reported their status recently."
        )
        alive.add_metric([], len(clusters))
        age = GaugeMetricFamily(
            "datadog_worker_heartbeat_age_seconds",
            "Seconds since each live worker cluster last reported.",
            labels=["cluster", "host"],
        )
        for cluster in clusters:
            age.add_metric([cluster["cluster"], cluster["host"]], cluster["age"])
        yield from (alive, age)

    def _pools(self) -> Iterator[Metric]:
        entries: list[tuple[str, dict[str, Any]]]
        try:
            entries = published_pools()
        except Exception:
            logger.warning("could not read published pool statistics", exc_info=True)
            entries = []
        me = process_name()
        if not any(name == me for name, _ in entries):
            entries += [(me, pool) for pool in pools.stats()]
        families = {
            key: GaugeMetricFamily(
                f"datadog_connector_pool_{key}", help_text, labels=["pool", "process"]
            )
            for key, help_text in (
                ("size", "Open connections in a connector pool."),
                ("in_use", "Connections of a connector pool lent out now."),
                ("waiting", "Requests waiting for a connection of a connector pool."),
            )
        }
        errors = CounterMetricFamily(
            "datadog_connector_pool_errors",
            "Failed connects, broken connections discarded and timed-out requests of a pool.",
            labels=["pool", "process"],
        )
        for process, pool in entries:
            for key, family in families.items():
                family.add_metric([str(pool["name"]), process], float(pool.get(key, 0)))
            errors.add_metric([str(pool["name"]), process], float(pool.get("errors", 0)))
        yield from families.values()
        yield errors


def _bound(value: float) -> str:
    return repr(float(value))


collector = PipelineCollector()
registry = CollectorRegistry(auto_describe=False)
registry.register(collector)


# --- Signal receivers ---------------------------------------------------------
def _on_task_run_finished(sender: Any, **_: Any) -> None:
    note_task_finished()


def _on_pre_execute(
    sender: Any, func: Any = None, task: dict[str, Any] | None = None, **_: Any
) -> None:
    """In a worker process, before each django-q2 task: pool publisher, log ids."""
    try:
        ensure_pool_publisher()
        name = f"{getattr(func, '__module__', '')}.{getattr(func, '__name__', '')}"
        args = (task or {}).get("args") or ()
        log_context.unbind()
        if not args:
            return
        ids: dict[str, Any]
        if name == alerts.SEND_TASK:
            ids = {"execution_id": args[0]}
        elif name == RUN_TASK:
            ids = {"task_id": args[0]}
            if log_context.json_enabled():
                # One primary-key read per task, and only when JSON logs are on.
                row = (
                    TaskRun.objects.filter(pk=args[0])
                    .values_list("execution_id", "task_name", "execution__pipeline__name")
                    .first()
                )
                if row:
                    ids.update(execution_id=row[0], task_name=row[1], pipeline=row[2])
        else:
            return
        log_context.bind(**ids)
    except Exception:
        logger.debug("could not set the log context", exc_info=True)


def _on_post_execute(sender: Any, **_: Any) -> None:
    log_context.unbind()


def _on_prune(sender: Any, **_: Any) -> datetime | None:
    """Executions may be pruned only once the stored base counts them."""
    return covered_until()


def connect_signals() -> None:
    """Connect metrics, alerts, prune-limit and log-context receivers (idempotent)."""
    signals.task_run_finished.connect(_on_task_run_finished, dispatch_uid="ops-last-finished")
    signals.execution_finished.connect(
        alerts.on_execution_finished, dispatch_uid="ops-failure-alert"
    )
    signals.prune_limit.connect(_on_prune, dispatch_uid="ops-prune-limit")
    pre_execute.connect(_on_pre_execute, dispatch_uid="ops-pre-execute")
    post_execute_in_worker.connect(_on_post_execute, dispatch_uid="ops-post-execute")
