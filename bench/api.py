"""API load: list and detail of executions at 100,000 executions, vs a bare Django view.

    .venv/bin/python bench/api.py [--executions 100000] [--clients 32] [--seconds 10]
        [--keep NAME]

Makes a scratch PostgreSQL database (dropped at the end), bulk-inserts the
executions with ``generate_series`` (two task runs each), starts gunicorn
on loopback with the production settings shape (PostgreSQL, Redis cache),
and drives it with ``--clients`` threads on keep-alive connections, each
phase bounded by ``--seconds`` and ``--max-requests``. Measured in the same
run, on the same server:

- bare: ``/healthz`` — a Django view returning JSON through the whole
  middleware stack, no database; measured before and after the others;
- list: ``GET /api/v1/executions`` (first page of 50, with count);
- detail: ``GET /api/v1/executions/<id>`` of random executions;
- status: ``GET /api/v1/executions/<id>/status``, the smallest authenticated
  read (JWT check, one visibility check, one query), for scale;
- the UI's runs page and dashboard, one signed-in client, sequentially
  (their latency: the pages are for people, not for 32 clients);
- ``/metrics`` scrape time, cold (base built from all history) and warm.

Before the phases the finished executions' answers are stored
(``pipelines.answers``, what the workers' maintenance does as runs finish
and ``manage.py answers`` does for a history at once; timed and printed).

``--keep NAME`` keeps the database, named NAME, for the next run: a run
that finds it seeded with as many executions migrates it (new indexes) and
reuses it instead of seeding again (a million executions take minutes).
Drop it with ``psql -c 'DROP DATABASE "NAME"'``.

Prints req/s, p50 and p99 per phase and the ratio to bare. The client runs
on the same machine and takes CPU from the server: the ratios are the
figure to compare, not the absolute rates.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, whose copy.py would shadow the
# standard library's copy module: put the project root there instead.
sys.path[0] = str(ROOT)

from bench import scratch  # noqa: E402 - after the sys.path fix

RUN = scratch.run_name("api")
PASSWORD = "bench-password-" + uuid.uuid4().hex
PIPELINES = 10


def seed(executions: int) -> None:
    """Pipelines through the services; executions and task runs in bulk SQL."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from accounts.permissions import Role
    from accounts.services import roles_setup, user_set_role
    from connectors.services import connection_create
    from pipelines.models import Execution, Pipeline, TaskRun
    from pipelines.services import pipeline_create

    roles_setup()
    user = get_user_model().objects.create_user(username="bench", password=PASSWORD)
    user_set_role(user=user, role=Role.ADMIN)
    connection_create(name="wh", kind="sqlite", config={"path": "wh.sqlite"})
    for i in range(PIPELINES):
        pipeline_create(
            data={
                "name": f"pipeline_{i}",
                "tasks": [
                    {"name": "extract", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
                    {
                        "name": "load",
                        "type": "sql",
                        "connection": "wh",
                        "sql": "SELECT 1",
                        "depends_on": ["extract"],
                    },
                ],
            }
        )
    per = executions // PIPELINES
    execution_table, task_table = Execution._meta.db_table, TaskRun._meta.db_table
    with connection.cursor() as cursor:
        for pipeline in Pipeline.objects.all():
            version_id = pipeline.versions.get(version=pipeline.version).pk
            # Finished runs, one a minute back from an hour ago; one in ten failed.
            cursor.execute(
                f"""
                INSERT INTO {execution_table} (execution_id, pipeline_id, version_id, status,
                    trigger, parameters, logical_date, data_interval_start, data_interval_end,
                    metrics, error, created_at, started_at, ended_at)
                SELECT gen_random_uuid(), %s, %s,
                    CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'success' END, 'manual', '{{}}',
                    t, t, t,
                    jsonb_build_object('tasks_completed', 2, 'rows_read', g %% 1000,
                        'rows_written', g %% 1000, 'duration_seconds', g %% 600),
                    CASE WHEN g %% 10 = 0 THEN 'load: boom' ELSE '' END,
                    t, t, t + (g %% 600) * interval '1 second'
                FROM generate_series(1, %s) AS g,
                    LATERAL (SELECT now() - interval '1 hour' - g * interval '1 minute' AS t) AS s
                """,
                [pipeline.pk, version_id, per],
            )
        for name, deps, down in (("extract", "[]", '["load"]'), ("load", '["extract"]', "[]")):
            cursor.execute(
                f"""
                INSERT INTO {task_table} (task_id, execution_id, task_name, task_type, status,
                    depends_on, downstream, waiting_for, spec, definition_task, attempt,
                    retry_count, max_retries, worker, heartbeat_at, queued_at, started_at,
                    ended_at, error, metrics)
                SELECT gen_random_uuid(), e.execution_id, %s, 'sql',
                    CASE WHEN e.status = 'failed' AND %s = 'load' THEN 'failed' ELSE 'success' END,
                    %s, %s, 0, '{{}}', %s, 1, 0, 0, 'bench', e.ended_at, e.started_at,
                    e.started_at, e.ended_at,
                    CASE WHEN e.status = 'failed' AND %s = 'load' THEN 'boom' ELSE '' END,
                    jsonb_build_object('rows_read', 10, 'rows_written', 10)
                FROM {execution_table} AS e
                """,
                [name, name, deps, down, name, name],
            )
        cursor.execute(f"ANALYZE {execution_table}")
        cursor.execute(f"ANALYZE {task_table}")


def database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(scratch.PG_ADMIN, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return found is not None


def reuse(executions: int) -> bool:
    """Whether the kept database holds the seed; then the bench user gets this run's password."""
    from django.contrib.auth import get_user_model

    from pipelines.models import Execution

    user = get_user_model().objects.filter(username="bench").first()
    if user is None or Execution.objects.count() != executions // PIPELINES * PIPELINES:
        return False
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return True


def start_gunicorn(
    port: int, workers: int, threads: int, log: Path, config: Path | None = None
) -> subprocess.Popen[bytes]:
    """gunicorn on loopback in its own process group; returns once /healthz answers.

    ``config``: a gunicorn config file (deploy/gunicorn.conf.py for the
    production shape); the bind, workers and threads given here override it.
    """
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "datadog_web.wsgi",
            *(["--config", str(config)] if config else []),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=open(log, "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"gunicorn did not start; see {log}")


def request(
    port: int, method: str, path: str, body: dict | None = None, token: str = ""
) -> tuple[int, bytes]:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def server_cpu(pgid: int, database: str) -> float:
    """CPU seconds used so far by the server: gunicorn's processes and the database's backends.

    Other sessions on the machine take CPU too; the CPU each request costs
    the server is the figure their load does not change much.
    """
    import psycopg

    with psycopg.connect(scratch.PG_ADMIN, autocommit=True) as conn:
        backends = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", [database]
        ).fetchall()
    ticks = sum(int(f[11]) + int(f[12]) for _, f in scratch.group_stat(pgid))
    for (pid,) in backends:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def load(
    port: int,
    paths: Callable[[random.Random], str],
    *,
    clients: int,
    seconds: float,
    max_requests: int,
    token: str,
    warmup: float = 2.0,
    cpu: Callable[[], float] | None = None,
) -> dict[str, float]:
    """``clients`` threads on keep-alive connections; latencies after the warmup.

    ``cpu``: the server's CPU seconds so far; the phase's CPU per request
    (warm-up included) is then reported too.
    """
    cpu_before = cpu() if cpu else 0.0
    latencies: list[float] = []
    everything = [0]
    errors = [0]
    lock = threading.Lock()
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    counted = [0]

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        mine: list[float] = []
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            path = paths(rng)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            done = time.monotonic()
            with lock:
                everything[0] += 1
            if done < measure_from:
                continue
            if not ok:
                with lock:
                    errors[0] += 1
                continue
            mine.append(done - now)
            if len(mine) % 50 == 0:
                with lock:
                    counted[0] += 50
                    if counted[0] >= max_requests:
                        break
        with lock:
            latencies.extend(mine)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = min(time.monotonic(), stop_at) - measure_from
    cpu_ms = (cpu() - cpu_before) * 1000 / max(1, everything[0]) if cpu else float("nan")
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50": pct(0.50) if latencies else float("nan"),
        "p99": pct(0.99) if latencies else float("nan"),
        "cpu_ms": cpu_ms,
    }


def ui_timings(port: int, requests: int = 20) -> dict[str, float]:
    """Median and worst latency of the runs page and the dashboard, signed in as the bench user."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.get(username="bench")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
    out: dict[str, float] = {}
    pages = (("runs page", "/runs"), ("runs page 3", "/runs?page=3"), ("dashboard", "/"))
    for label, path in pages:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            assert response.status == 200, (path, response.status)
            times.append((time.perf_counter() - started) * 1000)
        conn.close()
        times.sort()
        out[f"{label} ({path}), ms median"] = times[len(times) // 2]
        out[f"{label} ({path}), ms worst of {requests}"] = times[-1]
    return out


def metrics_timings(port: int) -> dict[str, float]:
    """Scrape times: in-process aggregates, then /metrics through gunicorn."""
    from django.core.cache import cache

    from ops import metrics

    out: dict[str, float] = {}
    cache.delete(metrics.BASE_KEY)
    started = time.perf_counter()
    metrics.aggregate(None, None)
    out["full aggregate (no base), ms"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    metrics.totals_now()  # builds and stores the base
    out["first totals_now (builds base), ms"] = (time.perf_counter() - started) * 1000
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        metrics.totals_now()
        runs.append((time.perf_counter() - started) * 1000)
    out["totals_now with stored base, ms (median of 5)"] = sorted(runs)[2]
    runs = []
    for _ in range(5):
        metrics.collector.reset()
        started = time.perf_counter()
        from prometheus_client import generate_latest

        generate_latest(metrics.registry)
        runs.append((time.perf_counter() - started) * 1000)
    out["whole collector incl. gauges, ms (median of 5)"] = sorted(runs)[2]
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        status, _ = request(port, "GET", "/metrics")
        assert status == 200
        runs.append((time.perf_counter() - started) * 1000)
    out["GET /metrics via gunicorn, ms (median of 5)"] = sorted(runs)[2]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--gunicorn-threads", type=int, default=4)
    parser.add_argument(
        "--keep", metavar="NAME", help="keep the seeded database as NAME and reuse it next time"
    )
    args = parser.parse_args()

    run = args.keep or RUN
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    scratch.scratch_env(run, tmp, **scratch.LOOPBACK_WEB)
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    existed = bool(args.keep) and database_exists(run)
    if not existed:
        scratch.create_database(run)
    server = None
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from pipelines.models import Execution, TaskRun

        if existed and reuse(args.executions):
            print(f"reusing database {run}")
        else:
            if existed:
                raise SystemExit(f"database {run} exists with another seed: drop it first")
            started = time.perf_counter()
            seed(args.executions)
            print(f"seeded in {time.perf_counter() - started:.1f}s")
        print(f"{Execution.objects.count()} executions, {TaskRun.objects.count()} task runs")
        # What the workers' maintenance does a slice at a time, and
        # `manage.py answers` at once: store the finished runs' answers.
        from pipelines.answers import answers_store

        started = time.perf_counter()
        stored, _ = answers_store(history=True)
        print(f"stored {stored} answers in {time.perf_counter() - started:.1f}s")
        ids = [
            str(pk)
            for pk in Execution.objects.values_list("pk", flat=True)[
                :: max(1, args.executions // 2000)
            ]
        ]
        port = scratch.free_port()
        server = start_gunicorn(
            port, args.gunicorn_workers, args.gunicorn_threads, tmp / "gunicorn.log"
        )
        status, body = request(
            port, "POST", "/api/v1/auth/token", {"username": "bench", "password": PASSWORD}
        )
        assert status == 200, body
        token = json.loads(body)["access_token"]
        status, body = request(port, "GET", "/api/v1/executions", token=token)
        assert status == 200, body[:300]
        print(f"list page: {len(json.loads(body)['results'])} of {json.loads(body)['count']}")

        def bare(rng: random.Random) -> str:
            return "/healthz"

        def listing(rng: random.Random) -> str:
            return "/api/v1/executions"

        def detail(rng: random.Random) -> str:
            return f"/api/v1/executions/{rng.choice(ids)}"

        def status_of(rng: random.Random) -> str:
            return f"/api/v1/executions/{rng.choice(ids)}/status"

        pgid = server.pid  # its own session: the group's id is its pid
        common = {
            "cpu": lambda: server_cpu(pgid, run),
            "clients": args.clients,
            "seconds": args.seconds,
            "max_requests": args.max_requests,
            "token": token,
        }
        results = {}
        results["bare (before)"] = load(port, bare, **common)
        results["list"] = load(port, listing, **common)
        results["detail"] = load(port, detail, **common)
        results["status"] = load(port, status_of, **common)
        results["bare (after)"] = load(port, bare, **common)
        bare_rps = (results["bare (before)"]["rps"] + results["bare (after)"]["rps"]) / 2
        print(
            f"\n{args.clients} clients, {args.seconds:.0f}s per phase, gunicorn "
            f"{args.gunicorn_workers} workers x {args.gunicorn_threads} threads, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        bare_cpu = (results["bare (before)"]["cpu_ms"] + results["bare (after)"]["cpu_ms"]) / 2
        header = ("phase", "requests", "errors", "req/s", "p50 ms", "p99 ms", "vs bare")
        header += ("CPU ms", "CPU vs bare")
        print(f"{header[0]:<14}" + "".join(f" {h:>8}" for h in header[1:]))
        for name, r in results.items():
            print(
                f"{name:<14} {r['requests']:>9} {r['errors']:>7} {r['rps']:>8.1f} "
                f"{r['p50']:>8.1f} {r['p99']:>8.1f} {r['rps'] / bare_rps:>7.0%} "
                f"{r['cpu_ms']:>8.2f} {bare_cpu / r['cpu_ms']:>10.0%}"
            )
        print(
            "CPU ms: server CPU (gunicorn + the database's backends) per request;"
            " CPU vs bare: bare's CPU per request / the phase's"
        )
        print()
        for label, ms in ui_timings(port).items():
            print(f"{label:<50} {ms:>8.1f}")
        for label, ms in metrics_timings(port).items():
            print(f"{label:<50} {ms:>8.1f}")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        if args.keep:
            import redis
            from django.db import connections

            connections.close_all()
            client = redis.Redis.from_url(scratch.REDIS)
            for key in client.scan_iter(f"*{run}*"):
                client.delete(key)
        else:
            scratch.cleanup(run)


if __name__ == "__main__":
    main()
