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
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, whose copy.py would shadow the
# standard library's copy module: put the project root there instead.
sys.path[0] = str(ROOT)

from bench import scratch  # noqa: E402 - after the sys.path fix
from bench.scratch import wait  # noqa: E402

RUN = scratch.run_name("orch")


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
    with scratch.deployment(RUN, WORKERS="2") as tmp:
        from bench import noop  # imports django-q2's models: after django.setup()

        noop.make_connection()
        with scratch.qcluster(tmp):
            report(args.chain, args.fanout, noop.TASK)


def report(chain_length: int, fanout: int, task: dict) -> None:  # type: ignore[type-arg]
    """Run both cases, product and baseline, and print the table."""
    chain = [
        {**task, "name": f"t{i}", **({"depends_on": [f"t{i - 1}"]} if i else {})}
        for i in range(chain_length)
    ]
    fan = [{**task, "name": f"t{i}"} for i in range(fanout)]
    product([{**task, "name": "w"}], "warmup")
    baseline_chain(5)
    rows = []
    for label, tasks, count, base in (
        (f"chain of {chain_length}", chain, chain_length, baseline_chain),
        (f"fan-out of {fanout}", fan, fanout, baseline_fanout),
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


if __name__ == "__main__":
    main()
