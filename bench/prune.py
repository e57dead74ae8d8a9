"""Prune throughput: history rows deleted per second while a worker runs pipelines.

    .venv/bin/python bench/prune.py [--executions 20000] [--tasks 3] [--lines 10]
        [--batch-size 500] [--inflight 4] [--warmup 15]

Makes a scratch PostgreSQL database (dropped at the end) and seeds, with
``generate_series``, ``--executions`` finished executions 100 to 200 days
old, each with ``--tasks`` task runs, a transition per move (the
execution's start and end, each task's queued, running and end) and
``--lines`` log lines per task run; plus as many recent executions that
must stay. A ``qcluster`` with two workers (its own pruning off,
RETENTION_DAYS=0) then runs a three-task pipeline with ``--inflight``
executions always in flight: first ``--warmup`` seconds alone (the
baseline), then while this process prunes with RETENTION_DAYS=90 exactly
as ``manage.py prune --batch-size N`` does.

Prints the rows deleted per second (all four tables), the pipeline runs
finished per second and their median time before and during the prune,
and the plan of the batch's selecting query.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, whose copy.py would shadow the
# standard library's copy module: put the project root there instead.
sys.path[0] = str(ROOT)

from bench import scratch  # noqa: E402 - after the sys.path fix

RUN = scratch.run_name("prune")
PIPELINES = 4


def seed(executions: int, tasks: int, lines: int) -> None:
    """Old finished runs (to delete) and as many recent ones (to keep), in bulk SQL."""
    from django.db import connection

    from connectors.services import connection_create
    from pipelines.models import Execution, Pipeline, TaskLogLine, TaskRun, Transition
    from pipelines.services import pipeline_create

    connection_create(name="wh", kind="sqlite", config={"path": "wh.sqlite"})
    chain = [
        {"name": f"t{i}", "type": "sql", "connection": "wh", "sql": "SELECT 1"}
        | ({"depends_on": [f"t{i - 1}"]} if i else {})
        for i in range(tasks)
    ]
    for i in range(PIPELINES):
        pipeline_create(data={"name": f"history_{i}", "tasks": chain})
    pipeline_create(data={"name": "live", "tasks": chain[:3]})
    ex, tr = Execution._meta.db_table, TaskRun._meta.db_table
    mv, log = Transition._meta.db_table, TaskLogLine._meta.db_table
    per = executions // PIPELINES
    with connection.cursor() as cursor:
        for pipeline in Pipeline.objects.exclude(name="live"):
            version_id = pipeline.versions.get(version=pipeline.version).pk
            # Half 100-200 days old (past RETENTION_DAYS=90), half 0-50 days old.
            for first_day, span in ((100, 100), (0, 50)):
                cursor.execute(
                    f"""
                    INSERT INTO {ex} (execution_id, pipeline_id, version_id, status, trigger,
                        parameters, metrics, error, created_at, started_at, ended_at)
                    SELECT gen_random_uuid(), %s, %s,
                        CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'success' END, 'manual',
                        '{{}}', jsonb_build_object('rows_read', 10, 'rows_written', 10),
                        CASE WHEN g %% 10 = 0 THEN 'boom' ELSE '' END,
                        t, t, t + interval '30 seconds'
                    FROM generate_series(1, %s) AS g, LATERAL (
                        SELECT now() - (%s + %s * g / %s::float) * interval '1 day' AS t) AS s
                    """,
                    [pipeline.pk, version_id, per, first_day, span, per],
                )
        for i in range(tasks):
            cursor.execute(
                f"""
                INSERT INTO {tr} (task_id, execution_id, task_name, task_type, status,
                    depends_on, downstream, waiting_for, spec, definition_task, attempt,
                    retry_count, max_retries, worker, queued_at, started_at, ended_at, error,
                    metrics)
                SELECT gen_random_uuid(), e.execution_id, %s, 'sql', 'success', '[]', '[]', 0,
                    '{{}}', %s, 1, 0, 0, 'bench', e.started_at, e.started_at, e.ended_at, '',
                    '{{}}'
                FROM {ex} AS e
                """,
                [f"t{i}", f"t{i}"],
            )
        cursor.execute(
            f"""
            INSERT INTO {mv} (execution_id, task_run_id, from_status, to_status, actor, reason,
                attempt, at)
            SELECT e.execution_id, NULL, m.f, m.t, 'bench', '', 0, e.started_at
            FROM {ex} AS e, (VALUES ('queued', 'running'), ('running', 'success')) AS m(f, t)
            """
        )
        cursor.execute(
            f"""
            INSERT INTO {mv} (execution_id, task_run_id, from_status, to_status, actor, reason,
                attempt, at)
            SELECT r.execution_id, r.task_id, m.f, m.t, 'bench', '', 1, r.started_at
            FROM {tr} AS r, (VALUES ('pending', 'queued'), ('queued', 'running'),
                ('running', 'success')) AS m(f, t)
            """
        )
        cursor.execute(
            f"""
            INSERT INTO {log} (task_run_id, attempt, seq, at, level, message)
            SELECT r.task_id, 1, 1000000 + g, r.started_at, 'INFO',
                'bench log line ' || g || ' of a task run that finished long ago'
            FROM {tr} AS r, generate_series(1, %s) AS g
            """,
            [lines],
        )
        for table in (ex, tr, mv, log):
            cursor.execute(f"ANALYZE {table}")


def counts() -> dict[str, int]:
    from pipelines.models import Execution, TaskLogLine, TaskRun, Transition

    return {
        "executions": Execution.objects.count(),
        "task runs": TaskRun.objects.count(),
        "transitions": Transition.objects.count(),
        "log lines": TaskLogLine.objects.count(),
    }


class Load(threading.Thread):
    """Keeps ``inflight`` executions of ``live`` in flight; records each finished one."""

    def __init__(self, inflight: int) -> None:
        super().__init__(daemon=True)
        self.inflight = inflight
        self.stop = threading.Event()
        self.done: list[tuple[float, float]] = []  # (finished at, seconds taken)

    def run(self) -> None:
        from django.db import connection

        from pipelines.models import Execution, Pipeline
        from pipelines.services import execution_create

        live = Pipeline.objects.get(name="live")
        active: dict[str, float] = {}
        while not self.stop.is_set():
            while len(active) < self.inflight:
                active[str(execution_create(pipeline=live).pk)] = time.monotonic()
            for pk, status in Execution.objects.filter(pk__in=list(active)).values_list(
                "pk", "status"
            ):
                if status in {"success", "failed", "cancelled"}:
                    if status != "success":
                        raise SystemExit(f"live run {pk} ended {status}")
                    started = active.pop(str(pk))
                    self.done.append((time.monotonic(), time.monotonic() - started))
            time.sleep(0.02)
        connection.close()

    def between(self, start: float, end: float) -> list[float]:
        return [taken for at, taken in self.done if start <= at < end]


def explain(batch_size: int) -> str:
    from django.db import connection

    from pipelines.services.retention import executions_past, retention_cutoff

    query = executions_past(retention_cutoff(90)).order_by("created_at").values("pk")
    sql, params = query[:batch_size].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(f"    {row[0]}" for row in cursor.fetchall())


def report(name: str, runs: list[float], seconds: float) -> str:
    if not runs:
        return f"{name}: no pipeline run finished in {seconds:.1f} s"
    return (
        f"{name}: {len(runs)} pipeline runs in {seconds:.1f} s ({len(runs) / seconds:.2f}/s), "
        f"median {statistics.median(runs):.2f} s per run"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=20000)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=15.0)
    args = parser.parse_args()

    with scratch.deployment(RUN, WORKERS="2", RETENTION_DAYS="0") as tmp:
        from pipelines.services.retention import executions_past, prune, retention_cutoff

        began = time.monotonic()
        seed(args.executions, max(args.tasks, 3), args.lines)
        before = counts()
        print(f"seeded in {time.monotonic() - began:.1f} s: {before}")
        print(f"batch query plan:\n{explain(args.batch_size)}")
        with scratch.qcluster(tmp):
            load = Load(args.inflight)
            load.start()
            warm_start = time.monotonic()
            time.sleep(args.warmup)
            start = time.monotonic()
            result = prune(days=90, audit_days=0, batch_size=args.batch_size)
            end = time.monotonic()
            load.stop.set()
            load.join()
        seconds = end - start
        print(f"deleted: {result} in {seconds:.1f} s")
        left = executions_past(retention_cutoff(90)).count()
        print(f"left: {left} finished executions past retention; all rows now: {counts()}")
        print(f"rows deleted per second: {result.rows / seconds:,.0f}")
        print(f"executions deleted per second: {result.executions / seconds:,.0f}")
        print(report("before the prune", load.between(warm_start, start), start - warm_start))
        print(report("during the prune", load.between(start, end), seconds))


if __name__ == "__main__":
    main()
