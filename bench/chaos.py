"""Chaos soak: mixed pipelines through two supervised workers while things break.

    .venv/bin/python bench/chaos.py [--runs 1000] [--minutes 10]   (as root)

A private metadata PostgreSQL (``initdb``/``pg_ctl`` as user postgres, on
its own port) and a private ``redis-server`` (append-only file, as compose
runs it) are made for the run; the pipelines' data lives in a scratch
database of the machine's PostgreSQL (dropped at the end). Two
``manage.py worker`` processes (WORKERS=1 each: one task slot plus the
maintainer's) run ``--runs`` executions created evenly over ``--minutes``
across five pipelines: a 3-task SQL chain, a fan-out of 4 SQL tasks and a
join, an upsert copy of a 2,000-row table in batches of 500, an append copy
of a query tagging each row with its execution id, and an append copy of a
200-row table in batches of 50. Meanwhile the harness

- SIGKILLs a random process of a random worker cluster (sentinel, task
  worker, monitor or pusher) every ~30 s,
- restarts Redis once (SIGTERM, down 5 s, started again on its files),
- stops the metadata PostgreSQL (``pg_ctl stop -m immediate``) for 15 s once,

and, like compose's ``restart: unless-stopped``, starts a worker command
again 1 s after it exits. Then it waits for every run to finish and reports:
runs per status, runs stuck (not finished), whether each copy is exact
(checksums against the source: no duplicate, no missing row), task runs
that ran more than once (more than one ``→ running`` transition), created →
ended latency p50/p99, and what it killed and restarted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # bench/copy.py must not shadow the stdlib module

from bench import scratch  # noqa: E402 - after the sys.path fix
from tests.servers import PrivatePostgres, PrivateRedis  # noqa: E402

RUN = scratch.run_name("chaos")
DATA_DB = f"{RUN}_data"
SRC_ROWS, SMALL_ROWS = 2000, 200
FINISHED = ("success", "failed", "cancelled")
T = TypeVar("T")


START = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


class Workers:
    """``manage.py worker`` processes, started again after they exit (a supervisor)."""

    def __init__(self, count: int, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = [self._start(i) for i in range(count)]
        self.exits: list[tuple[int, int]] = []  # (slot, exit code)
        self.stopping = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._supervise, daemon=True)
        self.thread.start()

    def _start(self, slot: int) -> subprocess.Popen[bytes]:
        with open(self.logs / f"worker{slot}.log", "ab") as out:
            return subprocess.Popen(
                [sys.executable, "manage.py", "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _supervise(self) -> None:
        while not self.stopping:
            with self.lock:
                for slot, proc in enumerate(self.procs):
                    code = proc.poll()
                    if code is not None and not self.stopping:
                        self.exits.append((slot, code))
                        log(f"worker {slot} exited {code}; starting it again in 1 s")
                        time.sleep(1)
                        self.procs[slot] = self._start(slot)
            time.sleep(0.5)

    def kill_one(self) -> str:
        """SIGKILL a random process of a random cluster; what it was."""
        import psutil

        with self.lock:
            slot = random.randrange(len(self.procs))
            try:
                wrapper = psutil.Process(self.procs[slot].pid)
                sentinels = [c for c in wrapper.children() if c.children()]
                if not sentinels:
                    return f"worker {slot}: no cluster yet"
                sentinel = sentinels[0]
                victims = [("sentinel", sentinel)] + [("child", c) for c in sentinel.children()]
                role, victim = random.choice(victims)
                victim.kill()
                return f"worker {slot}: {role} {victim.pid}"
            except psutil.NoSuchProcess:
                return f"worker {slot}: gone before the kill"

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(timeout=10)
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def through_outages(action: Callable[[], T], what: str) -> T:
    """``action`` again until the metadata database answers (the harness's own writes)."""
    from django.db import OperationalError, connections

    while True:
        try:
            return action()
        except OperationalError as exc:
            log(f"{what}: {str(exc).splitlines()[0][:80]}; again in 1 s")
            connections.close_all()
            time.sleep(1)


def data_url() -> str:
    return scratch.PG_ADMIN.rsplit("/", 1)[0] + f"/{DATA_DB}"


def make_data() -> None:
    import psycopg

    with psycopg.connect(scratch.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATA_DB}"')
    with psycopg.connect(data_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE src (id int PRIMARY KEY, grp int, val text)")
        conn.execute(
            "INSERT INTO src SELECT i, i %% 7, md5(i::text) FROM generate_series(1, %s) i",
            (SRC_ROWS,),
        )
        conn.execute("CREATE TABLE src_small (id int PRIMARY KEY, val text)")
        conn.execute(
            "INSERT INTO src_small SELECT i, md5(i::text) FROM generate_series(1, %s) i",
            (SMALL_ROWS,),
        )
        conn.execute("CREATE TABLE dst_upsert (id int PRIMARY KEY, grp int, val text)")
        conn.execute("CREATE TABLE dst_append (id int, val text, run text)")
        conn.execute("CREATE TABLE dst_append_t (id int, val text)")


def pipelines() -> list[Any]:
    from urllib.parse import urlparse

    from connectors.services import connection_create
    from pipelines.services import pipeline_create

    parsed = urlparse(data_url())
    connection_create(
        name="data",
        kind="postgresql",
        config={
            "host": parsed.hostname,
            "port": parsed.port or 5432,
            "database": DATA_DB,
            "username": parsed.username or "postgres",
        },
    )
    sql = {"type": "sql", "connection": "data", "sql": "SELECT pg_sleep(0.05), count(*) FROM src"}
    retried = {"retries": 3, "retry_delay": 1}

    def copy(name: str, source: dict[str, Any], destination: dict[str, Any], **extra: Any) -> Any:
        return pipeline_create(
            data={
                "name": name,
                "max_active_runs": 4,
                "tasks": [
                    {
                        "name": "copy",
                        "type": "copy",
                        "source": {"connection": "data", **source},
                        "destination": {"connection": "data", **destination},
                        **retried,
                        **extra,
                    }
                ],
            }
        )

    return [
        pipeline_create(
            data={
                "name": "chain",
                "max_active_runs": 50,
                "tasks": [
                    {**sql, **retried, "name": "a"},
                    {**sql, **retried, "name": "b", "depends_on": ["a"]},
                    {**sql, **retried, "name": "c", "depends_on": ["b"]},
                ],
            }
        ),
        pipeline_create(
            data={
                "name": "fanout",
                "max_active_runs": 50,
                "tasks": [{**sql, **retried, "name": f"t{i}"} for i in range(4)]
                + [
                    {
                        **sql,
                        **retried,
                        "name": "join",
                        "depends_on": [f"t{i}" for i in range(4)],
                    }
                ],
            }
        ),
        copy(
            "copy_upsert",
            {"table": "src"},
            {"table": "dst_upsert", "mode": "upsert", "keys": ["id"]},
            batch_size=500,
        ),
        copy(
            "copy_append_query",
            {"query": "SELECT id, val, %(execution_id)s AS run FROM src_small"},
            {"table": "dst_append", "mode": "append"},
        ),
        copy(
            "copy_append_table",
            {"table": "src_small"},
            {"table": "dst_append_t", "mode": "append"},
            batch_size=50,
        ),
    ]


def copies_exact(success: dict[str, set[str]], not_success: set[str]) -> list[str]:
    """What differs between the copies' destinations and what the runs promise."""
    import psycopg

    problems = []
    with psycopg.connect(data_url()) as conn:
        one = conn.execute

        def digest(table: str, columns: str) -> Any:
            return one(
                f"SELECT count(*), md5(string_agg(concat_ws('|', {columns}), ',' ORDER BY id))"
                f" FROM {table}"
            ).fetchone()

        if success["copy_upsert"] and digest("dst_upsert", "id, grp, val") != digest(
            "src", "id, grp, val"
        ):
            problems.append("dst_upsert differs from src")
        # Append by query: each successful run's 200 rows exactly once, nothing else.
        per_run = {
            run: (rows, ids)
            for run, rows, ids in one(
                "SELECT run, count(*), count(DISTINCT id) FROM dst_append GROUP BY run"
            ).fetchall()
        }
        for run in success["copy_append_query"]:
            if per_run.get(run) != (SMALL_ROWS, SMALL_ROWS):
                problems.append(f"dst_append run {run}: {per_run.get(run)} rows (count, distinct)")
        for run in set(per_run) - success["copy_append_query"]:
            problems.append(
                f"dst_append run {run} ({'not successful' if run in not_success else 'unknown'})"
                f" left {per_run[run]} rows"
            )
        # Append by table: every source row once per successful run.
        n = len(success["copy_append_table"])
        counts = Counter(dict(one("SELECT id, count(*) FROM dst_append_t GROUP BY id").fetchall()))
        wrong = {i: c for i, c in counts.items() if c != n}
        if len(counts) != (SMALL_ROWS if n else 0) or wrong:
            problems.append(
                f"dst_append_t: {len(counts)} ids, {len(wrong)} with a count other than {n}"
            )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=30.0)
    parser.add_argument("--drain-minutes", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    random.seed(args.seed)

    base = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    base.chmod(0o755)  # postgres reaches its data directory below
    meta = PrivatePostgres(base / "pg")
    cache = PrivateRedis(folder=base / "redis")
    workers = None
    try:
        meta.start()
        meta.create_database("datadog")
        cache.start()
        env = scratch.scratch_env(RUN, base / "var", WORKERS="1", LOG_LEVEL="WARNING")
        env.update(DATABASE_URL=meta.url(database="datadog"), REDIS_URL=cache.url())
        os.environ.update(env)
        worker_env = {**os.environ, **env}
        make_data()
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db.models import Count

        call_command("migrate", verbosity=0)
        from accounts.actor import Actor
        from pipelines.models import Execution, TaskRun, Transition
        from pipelines.services import execution_create

        targets = pipelines()
        user = get_user_model().objects.create_user("chaos", password=None)
        workers = Workers(2, worker_env, base)
        time.sleep(3)

        duration = args.minutes * 60
        interval = duration / args.runs
        redis_at, pg_at = duration * 0.25, duration * 0.55
        started = time.monotonic()
        log(
            f"{args.runs} runs over {duration:.0f}s; Redis restart at {redis_at:.0f}s, "
            f"PostgreSQL stop at {pg_at:.0f}s"
        )
        next_kill = started + args.kill_every
        kills: list[str] = []
        redis_done = pg_done = False
        pg_down_until: float | None = None
        for i in range(args.runs):
            due = started + i * interval
            while True:
                now = time.monotonic()
                if now >= next_kill:
                    kills.append(workers.kill_one())
                    log(f"SIGKILL {kills[-1]}")
                    next_kill += args.kill_every * random.uniform(0.8, 1.2)
                if not redis_done and now - started >= redis_at:
                    redis_done = True
                    log("Redis: stopping (SIGTERM)")
                    cache.stop()
                    time.sleep(5)
                    cache.start()
                    log("Redis: started again")
                if not pg_done and now - started >= pg_at:
                    pg_done = True
                    log("metadata PostgreSQL: stopping (immediate) for 15 s")
                    meta.stop()
                    pg_down_until = time.monotonic() + 15
                if pg_down_until is not None and now >= pg_down_until:
                    meta.start()
                    pg_down_until = None
                    log("metadata PostgreSQL: started again")
                if now >= due and pg_down_until is None:
                    break
                time.sleep(min(max(due - now, 0), 0.05) or 0.05)
            through_outages(
                lambda i=i: execution_create(  # type: ignore[misc]
                    pipeline=targets[i % len(targets)],
                    actor=Actor.of(user),
                    idempotency_key=f"chaos-{i}",
                ),
                f"creating run {i}",
            )
        created_in = time.monotonic() - started
        log(f"all {args.runs} runs created; draining")
        deadline = time.monotonic() + args.drain_minutes * 60
        while Execution.objects.exclude(status__in=FINISHED).exists():
            if time.monotonic() > deadline:
                break
            if time.monotonic() >= next_kill:
                next_kill = float("inf")  # no more chaos while draining
            time.sleep(1)
        drained_in = time.monotonic() - started

        by_status = dict(Execution.objects.values_list("status").annotate(n=Count("pk")).order_by())
        stuck = list(
            Execution.objects.exclude(status__in=FINISHED).values_list("pk", "status")[:20]
        )
        stuck_count = Execution.objects.exclude(status__in=FINISHED).count()
        errors = Counter(
            (e or "")[:120]
            for e in Execution.objects.filter(status="failed").values_list("error", flat=True)
        )
        latencies = sorted(
            (e.ended_at - e.created_at).total_seconds()
            for e in Execution.objects.filter(status__in=FINISHED).only("created_at", "ended_at")
        )

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0

        runs_per_task = Counter(
            Transition.objects.filter(task_run__isnull=False, to_status="running")
            .values_list("task_run", flat=True)
            .iterator()
        )
        again = {t: n for t, n in runs_per_task.items() if n > 1}
        why = Counter(
            (t.from_status, t.to_status, (t.reason or "")[:70])
            for t in Transition.objects.filter(task_run__in=list(again)).exclude(
                to_status="running"
            )
            if t.to_status in ("queued", "up_for_retry", "failed", "retrying")
            or "lease" in (t.reason or "")
        )
        success: dict[str, set[str]] = {target.name: set() for target in targets}
        not_success: set[str] = set()
        for pk, name, status in Execution.objects.values_list("pk", "pipeline__name", "status"):
            (success[name].add(str(pk)) if status == "success" else not_success.add(str(pk)))
        problems = copies_exact(success, not_success)

        print()
        print(f"runs created: {args.runs} in {created_in:.0f}s; drained after {drained_in:.0f}s")
        print(f"by status: {by_status}")
        print(f"runs stuck (not finished): {stuck_count} {stuck if stuck else ''}")
        for error, n in errors.most_common(10):
            print(f"  failed x{n}: {error}")
        print(
            "copies exact: "
            + ("yes" if not problems else "NO")
            + f" (upsert {len(success['copy_upsert'])} runs, append by query "
            f"{len(success['copy_append_query'])}, append by table "
            f"{len(success['copy_append_table'])})"
        )
        for problem in problems[:20]:
            print(f"  {problem}")
        print(
            f"task runs: {TaskRun.objects.count()}; run more than once: {len(again)} "
            f"({sum(again.values()) - len(again)} extra attempts)"
        )
        for (src, dst, reason), n in why.most_common(10):
            print(f"  x{n} {src} -> {dst}: {reason}")
        print(f"created -> ended latency: p50 {pct(0.5):.2f}s, p99 {pct(0.99):.2f}s")
        print(f"SIGKILLs ({len(kills)}): " + "; ".join(kills))
        exits = Counter(f"worker {slot} exit {code}" for slot, code in workers.exits)
        print(f"worker command exits, each started again: {dict(exits)}")
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    finally:
        if workers is not None:
            workers.stop()
        from django.db import connections

        connections.close_all()
        cache.stop()
        meta.stop("fast")  # a stopped server is left alone
        import psycopg

        with psycopg.connect(scratch.PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATA_DB}" WITH (FORCE)')
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
