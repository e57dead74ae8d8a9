"""Load test: locust against gunicorn + qcluster on a scratch PostgreSQL/Redis deployment.

    make loadtest
    .venv/bin/python bench/loadtest.py [--users 16] [--seconds 60] [--executions 5000]

Makes a scratch PostgreSQL database and Redis prefix (bench/scratch.py), a
second scratch database for a PostgreSQL connection's data, and seeds:
an admin and ``--operators`` operators (each shared half of the pipelines at
the operate level, so the sharing checks are under load), connections on
SQLite and PostgreSQL, thirteen pipelines (SQL on both, one of them taking
3 s, a PostgreSQL -> SQLite copy) and ``--executions`` finished executions
with their task runs.

Then starts gunicorn with the production config (deploy/gunicorn.conf.py,
as docker-compose's web service) and one ``qcluster`` (``WORKERS``), all on
127.0.0.1, and runs locust headless three times with the same user count:

- bare (before): tests/performance/bare.py, ``/healthz`` only;
- mix: tests/performance/locustfile.py (login, pipelines and executions
  lists, detail, status, execute, cancel), ``--seconds`` long;
- bare (after).

Clients are closed loops (no think time): req/s is what the server gives
for this mix on this machine. Prints requests, failures, req/s and
p50/p95/p99 per endpoint, the mix's req/s as a ratio of bare's and each
endpoint's p50 as a multiple of bare's (the ratios are the figures to
compare across machines; locust runs on the same cores as the server).

Everything is torn down at the end, also on failure or Ctrl-C: both
databases dropped, the Redis keys of the prefix deleted, the process groups
of gunicorn, qcluster and locust killed. Every step has a time bound.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, whose copy.py would shadow the
# standard library's copy module: put the project root there instead.
sys.path[0] = str(ROOT)

from bench import api, scratch  # noqa: E402 - after the sys.path fix

RUN = scratch.run_name("load")
DATA_DB = f"{RUN}_data"
LOCUST = ROOT / ".venv" / "bin" / "locust"
PERF = ROOT / "tests" / "performance"
# Locust's CSV columns reported per endpoint (percentiles in ms).
COLUMNS = ("Request Count", "Failure Count", "Requests/s", "50%", "95%", "99%")


def seed(executions: int, operators: int) -> list[str]:
    """The deployment's data; returns the user names the clients log in as."""
    import psycopg
    from django.contrib.auth import get_user_model

    from accounts.permissions import Level, Role
    from accounts.services import sharing_set, user_set_role
    from connectors.services import connection_create
    from pipelines.models import Pipeline
    from pipelines.services import pipeline_create

    # bench/api.py's seed: the admin "bench", SQLite connection "wh", ten SQL
    # pipelines and the executions (bulk SQL, two task runs each).
    api.seed(executions)
    scratch.create_database(DATA_DB)
    data_url = scratch.PG_ADMIN.rsplit("/", 1)[0] + f"/{DATA_DB}"
    with psycopg.connect(data_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items AS SELECT g AS id, 'item ' || g AS name, g * 7 AS amount"
            " FROM generate_series(1, 1000) AS g"
        )
        conn.execute("ALTER TABLE items ADD PRIMARY KEY (id)")
    server = urlparse(scratch.PG_ADMIN)
    connection_create(
        name="pg",
        kind="postgresql",
        config={
            "host": server.hostname or "127.0.0.1",
            "port": server.port or 5432,
            "database": DATA_DB,
            "username": server.username or "postgres",
        },
    )
    pg_sql = {"type": "sql", "connection": "pg", "sql": "SELECT count(*) FROM items"}
    pipeline_create(data={"name": "pg_sql", "tasks": [{**pg_sql, "name": "count"}]})
    # A run that lasts: the clients' cancels find some runs still queued or
    # running (the others finish before the cancel comes, and get a 409).
    pipeline_create(
        data={
            "name": "pg_slow",
            "tasks": [{**pg_sql, "name": "sleep", "sql": "SELECT pg_sleep(3)"}],
        }
    )
    pipeline_create(
        data={
            "name": "pg_to_sqlite",
            "tasks": [
                {
                    "name": "copy",
                    "type": "copy",
                    "source": {"connection": "pg", "table": "items"},
                    "destination": {"connection": "wh", "table": "items", "mode": "replace"},
                }
            ],
        }
    )
    users = ["bench"]
    pipelines = list(Pipeline.objects.order_by("name"))
    for i in range(operators):
        user = get_user_model().objects.create_user(username=f"op{i}", password=api.PASSWORD)
        user_set_role(user=user, role=Role.OPERATOR)
        users.append(user.username)
    for n, pipeline in enumerate(pipelines):
        # Even operators share the even pipelines, odd ones the odd: each sees about half.
        shared = {
            get_user_model().objects.get(username=name): Level.OPERATE
            for k, name in enumerate(users[1:])
            if k % 2 == n % 2
        }
        sharing_set(obj=pipeline, users=shared, groups={})
    return users


def start_qcluster(log: Path) -> subprocess.Popen[bytes]:
    """One cluster (``WORKERS`` processes) on the scratch Redis prefix."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        stdout=open(log, "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        pass


def run_locust(
    locustfile: Path, port: int, users: int, seconds: int, out: Path, env: dict[str, str]
) -> dict[str, dict[str, float]]:
    """One headless locust run; its per-endpoint stats (Locust's CSV), "Aggregated" included."""
    command = [
        str(LOCUST),
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        f"http://127.0.0.1:{port}",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{seconds}s",
        # Figures from the steady state: the counts start again once all users run.
        "--reset-stats",
        "--stop-timeout",
        "10",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--csv",
        str(out),
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=open(out.with_suffix(".log"), "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Locust exits 1 when any request failed: the failures are in the figures.
        proc.wait(timeout=seconds + 90)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"locust did not stop in time; see {out.with_suffix('.log')}") from None
    finally:
        # Also when this script is stopped (SIGTERM, Ctrl-C) mid-run.
        stop(proc, grace=5)
    stats = Path(f"{out}_stats.csv")
    if not stats.exists():
        raise SystemExit(f"locust wrote no stats; see {out.with_suffix('.log')}")
    with stats.open(newline="") as f:
        return {
            row["Name"]: {column: float(row[column] or "nan") for column in COLUMNS}
            for row in csv.DictReader(f)
        }


def report(
    bare_before: dict[str, dict[str, float]],
    mix: dict[str, dict[str, float]],
    bare_after: dict[str, dict[str, float]],
) -> str:
    """The results table (Markdown, as in bench/RESULTS.md)."""
    before, after = bare_before["Aggregated"], bare_after["Aggregated"]
    bare_rps = (before["Requests/s"] + after["Requests/s"]) / 2
    bare_p50 = (before["50%"] + after["50%"]) / 2
    lines = [
        "| endpoint | requests | failures | req/s | p50 ms | p95 ms | p99 ms | p50 vs bare |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        ("bare /healthz (before)", before),
        *sorted((name, row) for name, row in mix.items() if name != "Aggregated"),
        ("**mix, all endpoints**", mix["Aggregated"]),
        ("bare /healthz (after)", after),
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | {row['Request Count']:.0f} | {row['Failure Count']:.0f}"
            f" | {row['Requests/s']:.1f} | {row['50%']:.0f} | {row['95%']:.0f}"
            f" | {row['99%']:.0f} | {row['50%'] / bare_p50:.1f}x |"
        )
    lines.append("")
    lines.append(f"mix req/s vs bare req/s: {mix['Aggregated']['Requests/s'] / bare_rps:.0%}")
    return "\n".join(lines)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (e.g. from make being stopped) tears down like Ctrl-C does.
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=16, help="locust users (closed loops)")
    parser.add_argument("--seconds", type=int, default=60, help="length of the mixed run")
    parser.add_argument("--bare-seconds", type=int, default=20, help="length of each bare run")
    parser.add_argument("--executions", type=int, default=5000, help="seeded executions")
    parser.add_argument("--operators", type=int, default=3, help="seeded operator users")
    parser.add_argument("--gunicorn-workers", type=int, default=3, help="deploy's default: 3")
    parser.add_argument("--gunicorn-threads", type=int, default=4, help="deploy's default: 4")
    parser.add_argument("--queue-workers", type=int, default=2, help="qcluster WORKERS")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)

    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    scratch.scratch_env(
        RUN,
        tmp,
        **scratch.LOOPBACK_WEB,
        # Every client logs in at start and executes often: the default
        # per-user throttles would turn the test into a throttle test.
        THROTTLE_LOGIN="10000/min",
        THROTTLE_EXECUTE="100000/min",
        WORKERS=str(args.queue_workers),
    )
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    scratch.create_database(RUN)
    server = cluster = None
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db.models import Count

        from pipelines.models import Execution

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        users = seed(args.executions, args.operators)
        print(
            f"seeded {Execution.objects.count()} executions, {len(users)} users"
            f" in {time.perf_counter() - started:.1f}s"
        )
        seeded_ids = set(Execution.objects.values_list("pk", flat=True))
        cluster = start_qcluster(tmp / "qcluster.log")
        # The web processes only: prometheus_client's per-process files for
        # gunicorn's workers, in this run's directory (the config empties it).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "prometheus")
        port = scratch.free_port()
        server = api.start_gunicorn(
            port,
            args.gunicorn_workers,
            args.gunicorn_threads,
            tmp / "gunicorn.log",
            config=ROOT / "deploy" / "gunicorn.conf.py",
        )
        env = {
            **os.environ,
            "LOCUST_USERNAME": ",".join(users),
            "LOCUST_PASSWORD": api.PASSWORD,
            "LOCUST_WAIT": "0,0",
        }
        bare = PERF / "bare.py"
        bare_before = run_locust(bare, port, args.users, args.bare_seconds, tmp / "bare1", env)
        mix = run_locust(PERF / "locustfile.py", port, args.users, args.seconds, tmp / "mix", env)
        bare_after = run_locust(bare, port, args.users, args.bare_seconds, tmp / "bare2", env)
        cluster_alive = cluster.poll() is None
        new = dict(
            Execution.objects.exclude(pk__in=seeded_ids)
            .values("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        print(
            f"\n{args.users} locust users (no think time), mix {args.seconds}s, bare"
            f" {args.bare_seconds}s before and after; gunicorn {args.gunicorn_workers} workers"
            f" x {args.gunicorn_threads} threads (deploy/gunicorn.conf.py), qcluster"
            f" WORKERS={args.queue_workers}; {os.cpu_count()} CPUs, load average"
            f" {os.getloadavg()[0]:.2f}\n"
        )
        print(report(bare_before, mix, bare_after))
        print(f"executions started by the test, by status at the end: {new}")
        print(f"qcluster still running at the end: {cluster_alive}")
    finally:
        stop(server)
        stop(cluster)
        scratch.cleanup(RUN, DATA_DB)
        print(f"torn down: databases {RUN}, {DATA_DB}; Redis keys *{RUN}*; {tmp} kept (logs)")


if __name__ == "__main__":
    main()
