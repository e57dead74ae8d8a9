"""No-op work for the benchmarks: the product's no-op task and bare django-q2 functions.

The product side is an ``sql`` task running ``SELECT 1`` on an SQLite file
(``make_connection``); the bare functions are django-q2 itself doing the
same (bench/orchestration.py, bench/throughput.py).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from django.core.cache import cache
from django_q.tasks import async_task
from django_redis import get_redis_connection

CONNECTION = "noop"
TASK = {"type": "sql", "connection": CONNECTION, "sql": "SELECT 1"}
# The python no-op: needs PYTHON_TASK_MODULES to allow the package ``bench``.
PYTHON_TASK = {"type": "python", "callable": "bench.noop:python_noop"}


def make_connection() -> None:
    """The SQLite connection ``TASK`` runs on (a file under DATA_ROOT)."""
    from connectors.services import connection_create

    Path(os.environ["DATA_ROOT"]).mkdir(parents=True, exist_ok=True)
    connection_create(name=CONNECTION, kind="sqlite", config={"path": "noop.sqlite"})


def python_noop(ctx: object) -> None:
    """``PYTHON_TASK``'s function: returns at once."""


def chain_step(key: str, left: int) -> None:
    """One link of a chain: enqueue the next, or mark the chain done."""
    if left <= 1:
        cache.set(key, "done", 3600)
        return
    async_task("bench.noop.chain_step", key, left - 1, q_options={"save": False})


def count(key: str) -> None:
    cache.incr(key)


def _select_one() -> None:
    """``TASK``'s statement, as bare code: open the SQLite file, ``SELECT 1``, close."""
    conn = sqlite3.connect(Path(os.environ["DATA_ROOT"]) / "noop.sqlite")
    try:
        conn.execute("SELECT 1").fetchall()
    finally:
        conn.close()


def pair_first(key: str, arrival: float) -> None:
    """The first of two chained tasks: the statement, then enqueue the second."""
    _select_one()
    async_task("bench.noop.pair_second", key, arrival, q_options={"save": False})


def pair_second(key: str, arrival: float) -> None:
    """The second: the statement, then record ``arrival finished`` (epoch seconds) in Redis."""
    _select_one()
    get_redis_connection("default").rpush(key, f"{arrival} {time.time()}")
