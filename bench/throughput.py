"""Throughput as users compare it: executions per minute at p99 < 1 s.

    .venv/bin/python bench/throughput.py [--rates 600,1200,...] [--seconds 15]

A 2-task pipeline (two no-op ``sql`` tasks in a chain, ``SELECT 1`` on an
SQLite connection) on the shipped engine (leases, heartbeats, fencing,
transition rows: nothing switched off), one ``qcluster`` with WORKERS=2 on a
scratch PostgreSQL metadata database and Redis broker (bench/scratch.py).

An open-loop generator submits executions on a schedule (``execution_create``
at offered rate R per minute, from a pool of threads, never waiting for
completions) for ``--seconds`` per step, raising R step by step until p99
end-to-end latency (from the scheduled arrival to the execution's
``ended_at``) passes 1 s. Each step drains before the next starts.

Baseline, same run, same broker and cluster: bare django-q2 doing the same
two statements as two chained django-q2 tasks (bench/noop.py ``pair_first``
enqueues ``pair_second``), the same schedule and the same latency.

Prints per step: offered and achieved rate, p50/p95/p99, failures, and for
the product where the time went at the first step over 1 s (or the last).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Before any other import: run as a script, sys.path[0] is bench/, whose
# copy.py would shadow the standard library's copy module (dataclasses and
# redis import it).
sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from bench import scratch  # noqa: E402

RUN = scratch.run_name("tput")
P99_LIMIT = 1.0
DEFAULT_RATES = "300,600,1200,1800,2500,3000,3600,4800,6000,7500,9000,12000"


@dataclass
class Step:
    """One step of the ramp: its schedule and what came of it."""

    rate: float  # offered, executions per minute
    seconds: float
    arrivals: list[float] = field(default_factory=list)  # scheduled, epoch seconds
    lags: list[float] = field(default_factory=list)  # submit started - scheduled, s
    latencies: list[float] = field(default_factory=list)  # scheduled → finished, s
    failures: int = 0
    last_end: float = 0.0
    cpu_busy: float = 0.0  # machine CPU busy share over the step and its drain
    cpu_cluster: float = 0.0  # CPU seconds of the qcluster's processes
    cpu_submit: float = 0.0  # CPU seconds of this process (the generator, the polling)

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("inf")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    @property
    def achieved(self) -> float:
        """Executions finished per minute, first arrival to last finish."""
        if not self.latencies:
            return 0.0
        return len(self.latencies) / (self.last_end - self.arrivals[0]) * 60

    @property
    def holds(self) -> bool:
        return self.failures == 0 and self.pct(0.99) < P99_LIMIT


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def group_cpu(pgid: int) -> float:
    """CPU seconds of process group ``pgid``: its live processes and the children they reaped.

    django-q2 recycles worker processes; a recycled one's time is in its
    parent's cutime/cstime once reaped.
    """
    ticks = sum(
        sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        for _, fields in scratch.group_stat(pgid)
    )
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def offer(step: Step, submit: Callable[[float], None], pool: ThreadPoolExecutor) -> None:
    """Submit ``rate``/min for ``seconds`` on schedule (open loop) through ``pool``'s threads."""
    count = max(1, round(step.rate * step.seconds / 60))
    interval = 60 / step.rate
    start = time.time() + 0.2
    step.arrivals = [start + i * interval for i in range(count)]
    lock = threading.Lock()

    def fire(arrival: float) -> None:
        with lock:
            step.lags.append(time.time() - arrival)
        submit(arrival)

    futures = []
    for arrival in step.arrivals:
        delay = arrival - time.time()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(fire, arrival))
    for future in futures:
        if future.exception() is not None:
            step.failures += 1


def ramp(
    label: str,
    rates: list[float],
    seconds: float,
    run_step: Callable[[Step], None],
    cluster: int,
) -> list[Step]:
    """Run steps at rising rates until one does not hold p99 < 1 s; print each."""
    print(f"\n{label}")
    print(
        f"{'offered/min':>11} {'achieved/min':>12} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7}"
        f" {'failures':>8} {'submit lag p99 s':>16} {'CPU busy':>8}"
        f" {'cluster CPU ms/exec':>19} {'submit CPU ms/exec':>18}"
    )
    steps = []
    for rate in rates:
        step = Step(rate=rate, seconds=seconds)
        before, cluster_before, own_before = cpu_ticks(), group_cpu(cluster), own_cpu()
        run_step(step)
        after = cpu_ticks()
        step.cpu_busy = (after[0] - before[0]) / max(1, after[1] - before[1])
        step.cpu_cluster = group_cpu(cluster) - cluster_before
        step.cpu_submit = own_cpu() - own_before
        per = 1000 / max(1, len(step.arrivals))
        steps.append(step)
        lag = sorted(step.lags)[int(0.99 * (len(step.lags) - 1))]
        print(
            f"{rate:>11.0f} {step.achieved:>12.0f} {step.pct(0.5):>7.3f} {step.pct(0.95):>7.3f}"
            f" {step.pct(0.99):>7.3f} {step.failures:>8d} {lag:>16.3f} {step.cpu_busy:>8.0%}"
            f" {step.cpu_cluster * per:>19.1f} {step.cpu_submit * per:>18.1f}",
            flush=True,
        )
        if not step.holds:
            break
    return steps


def best(steps: list[Step]) -> float:
    """The highest offered rate whose step held p99 < 1 s without failures (0 if none)."""
    return max((s.rate for s in steps if s.holds), default=0.0)


class Product:
    """The shipped engine: ``execution_create`` of a 2-task chain, read back from its rows."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        from bench import noop  # imports django-q2's models: after django.setup()
        from pipelines.services import pipeline_create

        noop.make_connection()
        self.pool = pool
        self.pipeline = pipeline_create(
            data={
                "name": "pair",
                # Arrivals do not wait for each other: as many open runs as
                # the definition allows (the default, 16, would queue them).
                "max_active_runs": 1000,
                "tasks": [
                    {**noop.TASK, "name": "first"},
                    {**noop.TASK, "name": "second", "depends_on": ["first"]},
                ],
            }
        )
        self.arrival_of: dict[uuid.UUID, float] = {}
        self.lock = threading.Lock()

    def submit(self, arrival: float) -> None:
        from pipelines.services import execution_create

        # Each pool thread keeps its own database connection, as a web
        # server's thread would.
        execution = execution_create(pipeline=self.pipeline)
        with self.lock:
            self.arrival_of[execution.pk] = arrival

    def step(self, step: Step) -> None:
        from pipelines.models import Execution

        self.arrival_of = {}
        offer(step, self.submit, self.pool)
        finished = ("success", "failed", "cancelled")
        ids = list(self.arrival_of)
        deadline = time.monotonic() + max(30.0, step.seconds)
        while Execution.objects.filter(pk__in=ids).exclude(status__in=finished).exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        rows = Execution.objects.filter(pk__in=ids).values_list("pk", "status", "ended_at")
        for pk, status, ended in rows:
            if status != "success" or ended is None:
                step.failures += 1
                continue
            end = ended.timestamp()
            step.latencies.append(end - self.arrival_of[pk])
            step.last_end = max(step.last_end, end)
        self.last_ids = ids


class Bare:
    """django-q2 alone: ``pair_first`` → ``pair_second``, finish times pushed to Redis."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        from django_redis import get_redis_connection

        self.pool = pool
        self.redis = get_redis_connection("default")

    def step(self, step: Step) -> None:
        from django_q.tasks import async_task

        key = f"{RUN}:bare:{uuid.uuid4().hex}"

        def submit(arrival: float) -> None:
            async_task("bench.noop.pair_first", key, arrival, q_options={"save": False})

        offer(step, submit, self.pool)
        deadline = time.monotonic() + max(30.0, step.seconds)
        while self.redis.llen(key) < len(step.arrivals) and time.monotonic() < deadline:
            time.sleep(0.1)
        for item in self.redis.lrange(key, 0, -1):
            arrival, end = (float(x) for x in item.split())
            step.latencies.append(end - arrival)
            step.last_end = max(step.last_end, end)
        step.failures = max(step.failures, len(step.arrivals) - len(step.latencies))
        self.redis.delete(key)


def profile(product: Product, step: Step) -> None:
    """Where an execution's time went in ``step``: its rows' timestamps and database work."""
    from django.db.models import Count

    from pipelines.models import Execution, Transition

    ids = product.last_ids
    at: dict[tuple[uuid.UUID, str, str], float] = {}
    for execution_id, task, status, moment in Transition.objects.filter(
        execution_id__in=ids, task_run__isnull=False
    ).values_list("execution_id", "task_run__task_name", "to_status", "at"):
        at[(execution_id, task, status)] = moment.timestamp()
    phases: dict[str, list[float]] = {
        "scheduled → created (submit: generator + execution_create)": [],
        "created → first running (broker hop, claim)": [],
        "first running → success (task)": [],
        "first success → second running (follow downstream, claim)": [],
        "second running → success (task)": [],
        "second success → execution ended": [],
    }
    names = list(phases)
    rows = Execution.objects.filter(pk__in=ids, status="success").values_list(
        "pk", "created_at", "ended_at"
    )
    for pk, created, ended in rows:
        try:
            marks = [
                product.arrival_of[pk],
                created.timestamp(),
                at[(pk, "first", "running")],
                at[(pk, "first", "success")],
                at[(pk, "second", "running")],
                at[(pk, "second", "success")],
                ended.timestamp() if ended else 0.0,
            ]
        except KeyError:
            continue
        for name, a, b in zip(names, marks, marks[1:], strict=False):
            phases[name].append(b - a)
    print(f"\nwhere the time went at {step.rate:.0f}/min ({len(rows)} executions), ms:")
    print(f"  {'phase':<62} {'mean':>7} {'p50':>7} {'p99':>7}")
    for name, values in phases.items():
        if values:
            ordered = sorted(values)
            print(
                f"  {name:<62} {statistics.fmean(values) * 1000:>7.1f}"
                f" {ordered[len(ordered) // 2] * 1000:>7.1f}"
                f" {ordered[int(0.99 * (len(ordered) - 1))] * 1000:>7.1f}"
            )
    per_execution = dict(
        Transition.objects.filter(execution_id__in=ids)
        .values_list("execution_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    if per_execution:
        print(f"  transition rows per execution: {statistics.fmean(per_execution.values()):.1f}")


def database_work(product: Product) -> None:
    """Statements of one ``execution_create`` and transactions/rows of one execution."""
    import psycopg
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pipelines.models import Execution
    from pipelines.services import execution_create

    def stats() -> tuple[int, int, int]:
        with psycopg.connect(scratch.PG_ADMIN, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, tup_fetched"
                " FROM pg_stat_database WHERE datname = %s",
                (RUN,),
            ).fetchone()
        assert row is not None  # nosec B101 - the scratch database exists
        return row[0], row[1], row[2]

    count = 50
    time.sleep(1)  # let the statistics collector settle
    before = stats()
    with CaptureQueriesContext(connection) as queries:
        created = execution_create(pipeline=product.pipeline)
    ids = [created.pk] + [execution_create(pipeline=product.pipeline).pk for _ in range(count - 1)]
    done = Execution.objects.filter(pk__in=ids, status="success")
    scratch.wait(lambda: done.count() == count, 60)
    connection.close()
    time.sleep(1.5)
    after = stats()
    print(
        f"\ndatabase work, {count} executions one after another"
        f" (the pg_stat_database counters include this process's polling):"
    )
    print(f"  statements in one execution_create (the submitting side): {len(queries)}")
    print(f"  transactions committed per execution: {(after[0] - before[0]) / count:.1f}")
    written = (after[1] - before[1]) / count
    print(f"  rows written (inserted+updated+deleted) per execution: {written:.1f}")


def in_process(product: Product, count: int = 20) -> None:
    """The worker's side of ``count`` executions, run here one after another, profiled.

    With the cluster stopped, ``run_task`` of each execution's first task
    runs it, claims the second (the follow-downstream path) and runs that
    too: the whole execution in one call, as in a worker process.
    """
    import cProfile
    import pstats
    from collections import Counter

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pipelines.models import TaskRun
    from pipelines.services import execution_create
    from pipelines.tasks import run_task

    firsts = [
        TaskRun.objects.get(
            execution=execution_create(pipeline=product.pipeline), task_name="first"
        )
        for _ in range(count)
    ]
    profiler = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    with CaptureQueriesContext(connection) as queries:
        profiler.enable()
        for task_run in firsts:
            run_task(str(task_run.pk))
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    kinds = Counter(q["sql"].split(None, 1)[0].upper() for q in queries.captured_queries)
    print(f"\nworker side in process, {count} executions (both tasks each), per execution:")
    print(f"  wall {wall / count * 1000:.1f} ms, CPU of this process {cpu / count * 1000:.1f} ms")
    print(
        f"  statements {len(queries) / count:.1f}: "
        + ", ".join(f"{kind} {n / count:.1f}" for kind, n in kinds.most_common())
    )
    print("  the statements of one execution, in order (verb, first table):")
    per_run = len(queries) // count
    for query in queries.captured_queries[:per_run]:
        sql = query["sql"]
        table = re.search(r'(?:FROM|INTO|UPDATE) "(\w+)"', sql)
        print(f"    {sql.split(None, 1)[0].upper():<8} {table.group(1) if table else ''}")
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    buckets = {
        "in psycopg cursor execute (database round trips)": ("psycopg/cursor.py", "execute"),
        "django-q2 async_task (enqueue)": ("django_q/tasks.py", "async_task"),
        "SQLite connect + SELECT 1 (the task itself)": ("sqlite", "connect"),
        "Django ORM compile (as_sql)": ("django/db/models/sql/compiler.py", "as_sql"),
    }
    print("  cumulative time of (profiled, so slower than unprofiled):")
    for label, (path, func) in buckets.items():
        total = sum(v[3] for (file, _, name), v in entries.items() if path in file and name == func)
        print(f"    {label:<52} {total / count * 1000:>6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default=DEFAULT_RATES, help="offered executions/min per step")
    parser.add_argument("--seconds", type=float, default=15.0, help="arrivals per step, seconds")
    parser.add_argument("--threads", type=int, default=8, help="generator threads")
    parser.add_argument("--bare-max", type=float, default=12000, help="bare steps stop here")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    with scratch.deployment(RUN, WORKERS="2") as tmp:
        pool = ThreadPoolExecutor(max_workers=args.threads)
        product = Product(pool)
        bare = Bare(pool)
        with scratch.qcluster(tmp) as cluster:
            measure(args, rates, pool, product, bare, cluster.pid)
        in_process(product)
        pool.shutdown()


def measure(
    args: argparse.Namespace,
    rates: list[float],
    pool: ThreadPoolExecutor,
    product: Product,
    bare: Bare,
    cluster: int,
) -> None:
    """Warm up, ramp the product then the baseline, profile, print the summary."""
    from django.conf import settings

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    q = settings.Q_CLUSTER
    print(
        f"Q_CLUSTER: workers {q['workers']} (WORKERS {settings.WORKERS} + maintenance),"
        f" poll {q['poll']}, recycle {q['recycle']}, timeout {q['timeout']};"
        f" TASK_LEASE_SECONDS {settings.TASK_LEASE_SECONDS},"
        f" HEARTBEAT_SECONDS {settings.HEARTBEAT_SECONDS},"
        f" FOLLOW_DOWNSTREAM_SECONDS {settings.FOLLOW_DOWNSTREAM_SECONDS}"
    )
    warm = Step(rate=120, seconds=3)
    product.step(warm)
    bare.step(Step(rate=120, seconds=3))

    ours = ramp(
        "product (2-task pipeline, every guarantee on)",
        rates,
        args.seconds,
        product.step,
        cluster,
    )
    knee = next((s for s in ours if not s.holds), ours[-1])
    profile(product, knee)
    theirs = ramp(
        "bare django-q2 (two chained tasks, same statements)",
        [r for r in rates if r <= args.bare_max],
        args.seconds,
        bare.step,
        cluster,
    )
    database_work(product)
    top, base = best(ours), best(theirs)
    more = f" (or more: the last step, {theirs[-1].rate:.0f}, held)" if theirs[-1].holds else ""
    print(f"\nhighest rate holding p99 < {P99_LIMIT:.0f} s without failures:")
    print(f"  product: {top:.0f} executions/min ({top * 2:.0f} tasks/min)")
    print(f"  bare django-q2: {base:.0f} executions/min{more}")
    if base:
        print(f"  ratio product / bare: {top / base:.2f}")
    print(f"  goal ≥ 2500/min: {'met' if top >= 2500 else 'NOT met'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
