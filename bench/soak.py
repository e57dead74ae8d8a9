"""Soak: N pipeline runs at a steady rate through 2 workers; none stuck, memory flat.

    .venv/bin/python bench/soak.py [--runs 1000] [--minutes 10]

Makes a scratch PostgreSQL database (dropped at the end) and a Redis
prefix, starts one ``qcluster`` with WORKERS=2, and creates ``--runs``
executions evenly over ``--minutes`` (three pipelines: a 3-task SQL chain,
a copy of 200 rows between SQLite files, and a fan-out of 4 SQL tasks).
Every 15 s it samples the RSS of each process of the cluster and how many
runs are finished. At the end it waits for the last runs, and reports:
runs per status, runs not finished (stuck), queue-to-end latency p50/p99,
RSS per process over time, and whether /metrics agrees with the database.

django-q2 recycles a worker process after 500 tasks (Q_CLUSTER "recycle"):
a worker pid that changes is a recycle, not a crash; RSS is reported per
pid so growth within one process's life is visible.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # bench/copy.py must not shadow the stdlib module

from bench import scratch  # noqa: E402 - after the sys.path fix

RUN = scratch.run_name("soak")


def group_rss(pgid: int) -> dict[int, int]:
    """RSS in KiB of every live process in process group ``pgid``."""
    result = {}
    for entry, _ in scratch.group_stat(pgid):
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    result[int(entry.name)] = int(line.split()[1])
        except OSError:
            continue
    return result


def pipelines() -> list:  # type: ignore[type-arg]
    from connectors.services import connection_create
    from pipelines.services import pipeline_create

    data = Path(os.environ["DATA_ROOT"])
    data.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(data / "src.sqlite") as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, amount INTEGER)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?, ?)", [(i, f"n{i}", i * 7) for i in range(200)]
        )
    connection_create(name="src", kind="sqlite", config={"path": "src.sqlite"})
    connection_create(name="dst", kind="sqlite", config={"path": "dst.sqlite"})
    sql = {"type": "sql", "connection": "src", "sql": "SELECT count(*) FROM people"}
    return [
        pipeline_create(
            data={
                "name": "chain",
                "tasks": [
                    {**sql, "name": "a"},
                    {**sql, "name": "b", "depends_on": ["a"]},
                    {**sql, "name": "c", "depends_on": ["b"]},
                ],
            }
        ),
        pipeline_create(
            data={
                "name": "copy",
                "max_active_runs": 1,  # replace-mode copies of one table queue up
                "tasks": [
                    {
                        "name": "copy",
                        "type": "copy",
                        "source": {"connection": "src", "table": "people"},
                        "transformations": [
                            {
                                "name": "big",
                                "function": "filter",
                                "params": {"where": [["amount", ">", 10]]},
                            }
                        ],
                        "destination": {"connection": "dst", "table": "people", "mode": "replace"},
                    }
                ],
            }
        ),
        pipeline_create(
            data={
                "name": "fanout",
                "tasks": [{**sql, "name": f"t{i}"} for i in range(4)],
            }
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--drain-minutes", type=float, default=5.0)
    args = parser.parse_args()

    with scratch.deployment(RUN, WORKERS="2") as tmp:
        from django.db.models import Count

        from pipelines.models import Execution
        from pipelines.services import execution_create

        targets = pipelines()
        with scratch.qcluster(tmp) as cluster:
            finished = ("success", "failed", "cancelled")
            interval = args.minutes * 60 / args.runs
            started = time.monotonic()
            samples: list[tuple[float, int, dict[int, int]]] = []
            next_sample = started
            for i in range(args.runs):
                due = started + i * interval
                while True:
                    now = time.monotonic()
                    if now >= next_sample:
                        done = Execution.objects.filter(status__in=finished).count()
                        samples.append((now - started, done, group_rss(cluster.pid)))
                        next_sample += 15
                    if now >= due:
                        break
                    time.sleep(min(due - now, 0.05))
                execution_create(pipeline=targets[i % len(targets)])
            created_in = time.monotonic() - started
            deadline = time.monotonic() + args.drain_minutes * 60
            while Execution.objects.exclude(status__in=finished).exists():
                if time.monotonic() > deadline:
                    break
                time.sleep(1)
            drained_in = time.monotonic() - started
            samples.append(
                (
                    drained_in,
                    Execution.objects.filter(status__in=finished).count(),
                    group_rss(cluster.pid),
                )
            )

            by_status = dict(
                Execution.objects.values_list("status").annotate(n=Count("pk")).order_by()
            )
            stuck = Execution.objects.exclude(status__in=finished).count()
            latencies = sorted(
                (e.ended_at - e.created_at).total_seconds()
                for e in Execution.objects.filter(status__in=finished).only(
                    "created_at", "ended_at"
                )
            )

            def pct(p: float) -> float:
                return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

            from django.test import Client
            from prometheus_client.parser import text_string_to_metric_families

            from ops import metrics

            metrics.collector.reset()
            scraped = 0.0
            text = Client(HTTP_HOST="localhost").get("/metrics").content.decode()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "datadog_pipeline_executions_total":
                        scraped += sample.value

            print(
                f"runs created: {args.runs} in {created_in:.0f}s; all finished after "
                f"{drained_in:.0f}s; load average {os.getloadavg()[0]:.2f}"
            )
            print(f"by status: {by_status}; not finished (stuck): {stuck}")
            print(f"created → ended latency: p50 {pct(0.5):.2f}s, p99 {pct(0.99):.2f}s")
            print(f"/metrics datadog_pipeline_executions_total sum: {scraped:.0f}")
            print("\nRSS MiB per cluster process (pid: values every ~15 s)")
            pids = sorted({pid for _, _, rss in samples for pid in rss})
            for pid in pids:
                values = [rss[pid] / 1024 for _, _, rss in samples if pid in rss]
                first = next(t for t, _, rss in samples if pid in rss)
                last = [t for t, _, rss in samples if pid in rss][-1]
                print(
                    f"  {pid}: {len(values)} samples {first:.0f}s-{last:.0f}s, first "
                    f"{values[0]:.1f}, max {max(values):.1f}, last {values[-1]:.1f}"
                )
            print("\nprogress (t s, finished runs, total cluster RSS MiB)")
            for t, done, rss in samples:
                print(f"  {t:6.0f} {done:6d} {sum(rss.values()) / 1024:8.1f}")


if __name__ == "__main__":
    main()
