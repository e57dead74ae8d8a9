"""A scratch deployment for benchmarks: environment, PostgreSQL database, Redis keys.

Every benchmark runs the product against its own database and Redis prefix,
made here and removed afterwards, so runs never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

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
