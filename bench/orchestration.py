"""Orchestration overhead: no-op tasks end to end through Redis and 2 workers.

    .venv/bin/python bench/orchestration.py [--chain 100] [--fanout 1000] [--types sql,python]

Needs PostgreSQL (metadata, a scratch database made and dropped here) and
Redis. Measures, in the same run:

- product: a chain of N no-op tasks and a fan-out of M independent ones,
  from execution_create to the execution's success, through real qcluster
  workers, for each task type: ``sql`` (``SELECT 1`` on an SQLite
  connection) and ``python`` (a function that returns at once);
- baseline: django-q2 itself running the same number of bare no-op
  functions (for the chain, each function enqueues the next one).

Prints ms/task and the ratio product / baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, whose copy.py would shadow the
# standard library's copy module: put the project root there instead.
sys.path[0] = str(ROOT)

from bench import scratch  # noqa: E402 - after the sys.path fix
from bench.scratch import wait  # noqa: E402
from bench.throughput import group_cpu, own_cpu  # noqa: E402

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
    parser.add_argument("--types", default="sql,python", help="no-op task types to measure")
    args = parser.parse_args()
    # bench/noop.py's python no-op is in the package ``bench``.
    with scratch.deployment(RUN, WORKERS="2", PYTHON_TASK_MODULES="bench") as tmp:
        from bench import noop  # imports django-q2's models: after django.setup()

        noop.make_connection()
        tasks = {"sql": noop.TASK, "python": noop.PYTHON_TASK}
        with scratch.qcluster(tmp) as cluster:
            report(
                args.chain, args.fanout, {t: tasks[t] for t in args.types.split(",")}, cluster.pid
            )


def measured(run: Callable[[], float], cluster: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the cluster's processes and this one) of ``run``."""
    before = group_cpu(cluster) + own_cpu()
    wall = run()
    return wall, group_cpu(cluster) + own_cpu() - before


def report(chain_length: int, fanout: int, tasks: dict[str, dict], cluster: int) -> None:  # type: ignore[type-arg]
    """Run both cases per task type, product and baseline, and print the table.

    Beside wall time per task, the CPU time per task of the cluster's
    processes and of this one (which submits): on a machine shared with
    other work the wall-clock ratio swings with the load, the CPU ratio
    much less. PostgreSQL's and Redis's own CPU is in neither.
    """
    for kind, task in tasks.items():
        product([{**task, "name": "w"}], f"warmup_{kind}")
    baseline_chain(5)
    rows = []
    for kind, task in tasks.items():
        chain = [
            {**task, "name": f"t{i}", **({"depends_on": [f"t{i - 1}"]} if i else {})}
            for i in range(chain_length)
        ]
        fan = [{**task, "name": f"t{i}"} for i in range(fanout)]
        for label, steps, count, base in (
            (f"{kind} chain of {chain_length}", chain, chain_length, baseline_chain),
            (f"{kind} fan-out of {fanout}", fan, fanout, baseline_fanout),
        ):
            name = label.replace(" ", "_").replace("-", "_")
            ours, ours_cpu = measured(lambda s=steps, n=name: product(s, n), cluster)
            bare, bare_cpu = measured(lambda b=base, c=count: b(c), cluster)
            per = 1000 / count
            rows.append((label, ours * per, bare * per, ours_cpu * per, bare_cpu * per))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{'case':<27} {'product ms/task':>16} {'bare ms/task':>13} {'ratio':>6}"
        f" {'product CPU ms/task':>20} {'bare CPU ms/task':>17} {'CPU ratio':>9}"
        f" {'mean queue wait ms':>19} {'mean claim→success ms':>22}"
    )
    for label, ours_ms, bare_ms, ours_cpu, bare_cpu in rows:
        wait, run = BREAKDOWN[label.replace(" ", "_").replace("-", "_")]
        print(
            f"{label:<27} {ours_ms:>16.2f} {bare_ms:>13.2f} {ours_ms / bare_ms:>6.2f}"
            f" {ours_cpu:>20.2f} {bare_cpu:>17.2f} {ours_cpu / bare_cpu:>9.2f}"
            f" {wait:>19.2f} {run:>22.2f}"
        )


if __name__ == "__main__":
    main()
