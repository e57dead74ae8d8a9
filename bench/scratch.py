"""A scratch deployment for benchmarks: environment, PostgreSQL database, Redis keys.

Every benchmark runs the product against its own database and Redis prefix,
made here and removed afterwards, so runs never see each other's data.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


# The web server's settings for a benchmark's gunicorn on loopback: plain
# HTTP (no HTTPS redirect, no secure-only cookies), and access tokens that
# outlast the run.
LOOPBACK_WEB = {
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "SECURE_COOKIES": "false",
    "ACCESS_TOKEN_SECONDS": "3600",
}


def run_name(kind: str) -> str:
    return f"bench_{kind}_{uuid.uuid4().hex[:8]}"


def scratch_env(run: str, tmp: Path, **extra: str) -> dict[str, str]:
    """Point this process (and the processes it starts) at the scratch deployment."""
    from cryptography.fernet import Fernet

    env = {
        "DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{run}",
        "REDIS_URL": REDIS,
        "REDIS_PREFIX": run,
        "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
        "FERNET_KEYS": Fernet.generate_key().decode(),
        "DATADOG_VAR_DIR": str(tmp),
        "DATA_ROOT": str(tmp / "data"),
        "DJANGO_SETTINGS_MODULE": "datadog_web.settings",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    os.environ.update(env)
    return env


def create_database(run: str) -> None:
    """An empty PostgreSQL database named ``run`` (drop it with ``cleanup``)."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{run}"')


def cleanup(run: str, *databases: str) -> None:
    """Drop the scratch database (and ``databases``) and delete the run's Redis keys."""
    import psycopg
    import redis
    from django.db import connections

    connections.close_all()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for name in (run, *databases):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"*{run}*"):
        client.delete(key)


def migrate() -> None:
    """Set Django up on the scratch environment and migrate its database."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@contextmanager
def deployment(run: str, **extra: str) -> Iterator[Path]:
    """The scratch deployment of ``run``, migrated; yields its temporary directory.

    ``extra`` adds environment variables (e.g. WORKERS). The database and
    Redis keys are removed on the way out, whatever happened.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f"{run}-"))
    scratch_env(run, tmp, **extra)
    create_database(run)
    try:
        migrate()
        yield tmp
    finally:
        cleanup(run)


@contextmanager
def qcluster(tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One ``manage.py qcluster`` in its own session, logging to ``tmp``/qcluster.log.

    Its WORKERS come from the scratch environment; its whole process group
    is killed on the way out.
    """
    with open(tmp / "qcluster.log", "w") as log:
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            time.sleep(3)  # let the cluster start
            yield cluster
        finally:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()


def group_stat(pgid: int) -> Iterator[tuple[Path, list[str]]]:
    """``(/proc/<pid>, fields after the command name)`` of each live process of group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5 of /proc/pid/stat: pgrp
            yield entry, fields


def wait(predicate: Callable[[], bool], timeout: float) -> None:
    """Poll ``predicate`` every 5 ms until it holds; exit the benchmark after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
