"""Orchestration overhead: no-op tasks end to end through Redis and 2 workers.

    .venv/bin/python bench/orchestration.py [--chain 100] [--fanout 1000]

Needs PostgreSQL (metadata, a scratch database made and dropped here) and
Redis. Measures, in the same run:

- product: a chain of N no-op ``sql`` tasks (``SELECT 1`` on an SQLite
  connection) and a fan-out of M independent ones, from execution_create to
  the execution's success, through real qcluster workers;
- baseline: django-q2 itself running the same number of bare no-op
  functions (for the chain, each function enqueues the next one).

Prints ms/task and the ratio product / baseline.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, whose copy.py would shadow the
# standard library's copy module: put the project root there instead.
sys.path[0] = str(ROOT)

from bench import scratch  # noqa: E402 - after the sys.path fix

RUN = scratch.run_name("orch")


def wait(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def product(tasks: list[dict], name: str) -> float:  # type: ignore[type-arg]
    from pipelines.models import Execution
    from pipelines.services import execution_create, pipeline_create

    pipeline = pipeline_create(data={"name": name, "max_active_runs": 1, "tasks": tasks})
    started = time.perf_counter()
    execution = execution_create(pipeline=pipeline)
    finished = {"success", "failed", "cancelled"}
    wait(lambda: Execution.objects.filter(pk=execution.pk, status__in=finished).exists(), 600)
    elapsed = time.perf_counter() - started
    execution.refresh_from_db()
    if execution.status != "success":
        raise SystemExit(f"{name}: {execution.status} {execution.error}")
    BREAKDOWN[name] = _breakdown(execution)
    return elapsed


BREAKDOWN: dict[str, tuple[float, float]] = {}


def _breakdown(execution) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Mean ms a task waited (queued → running) and ran (running → success)."""
    from pipelines.models import Transition

    at: dict[tuple[str, str], float] = {}
    for name, status, moment in Transition.objects.filter(
        execution=execution, task_run__isnull=False
    ).values_list("task_run__task_name", "to_status", "at"):
        at[(name, status)] = moment.timestamp()
    names = {name for name, _ in at}
    wait = [at[(n, "running")] - at[(n, "queued")] for n in names]
    run = [at[(n, "success")] - at[(n, "running")] for n in names]
    return sum(wait) / len(wait) * 1000, sum(run) / len(run) * 1000


def baseline_chain(n: int) -> float:
    from django.core.cache import cache
    from django_q.tasks import async_task

    key = f"bench:chain:{uuid.uuid4().hex}"
    started = time.perf_counter()
    async_task("bench.noop.chain_step", key, n, q_options={"save": False})
    wait(lambda: cache.get(key) == "done", 600)
    return time.perf_counter() - started


def baseline_fanout(n: int) -> float:
    from django.core.cache import cache
    from django_q.tasks import async_task

    key = f"bench:fan:{uuid.uuid4().hex}"
    cache.set(key, 0, 3600)
    started = time.perf_counter()
    for _ in range(n):
        async_task("bench.noop.count", key, q_options={"save": False})
    wait(lambda: cache.get(key) == n, 600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--fanout", type=int, default=1000)
    args = parser.parse_args()
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    scratch.scratch_env(RUN, tmp, WORKERS="2")
    scratch.create_database(RUN)
    workers = None
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from connectors.services import connection_create

        (tmp / "data").mkdir(parents=True, exist_ok=True)
        connection_create(name="noop", kind="sqlite", config={"path": "noop.sqlite"})
        log = open(tmp / "qcluster.log", "w")
        workers = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        time.sleep(3)  # let the cluster start
        noop = {"type": "sql", "connection": "noop", "sql": "SELECT 1"}
        chain = [
            {**noop, "name": f"t{i}", **({"depends_on": [f"t{i - 1}"]} if i else {})}
            for i in range(args.chain)
        ]
        fan = [{**noop, "name": f"t{i}"} for i in range(args.fanout)]
        product([{**noop, "name": "w"}], "warmup")
        baseline_chain(5)
        rows = []
        for label, tasks, count, base in (
            (f"chain of {args.chain}", chain, args.chain, baseline_chain),
            (f"fan-out of {args.fanout}", fan, args.fanout, baseline_fanout),
        ):
            ours = product(tasks, label.replace(" ", "_").replace("-", "_"))
            bare = base(count)
            rows.append((label, ours / count * 1000, bare / count * 1000))
        print(
            f"{'case':<20} {'product ms/task':>16} {'bare django-q2 ms/task':>24} {'ratio':>7}"
            f" {'mean queue wait ms':>19} {'mean claim→success ms':>22}"
        )
        for label, ours_ms, bare_ms in rows:
            wait, run = BREAKDOWN[label.replace(" ", "_").replace("-", "_")]
            print(
                f"{label:<20} {ours_ms:>16.2f} {bare_ms:>24.2f} {ours_ms / bare_ms:>7.2f}"
                f" {wait:>19.2f} {run:>22.2f}"
            )
    finally:
        if workers is not None:
            os.killpg(workers.pid, 9)
            workers.wait()
        scratch.cleanup(RUN)


if __name__ == "__main__":
    main()
