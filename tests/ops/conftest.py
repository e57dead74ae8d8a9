"""Helpers for the operations tests: scraping /metrics, waiting for runs."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from ops import metrics
from tests.servers import PrivateRedis
from tests.services import missing

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def fresh_metrics(settings: Any) -> Iterator[None]:
    """No memoized totals or stored base from an earlier test (same Redis prefix)."""
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]
    settings.METRICS_TOKEN = None

    def clear() -> None:
        metrics.collector.reset()
        try:
            cache.delete_many(
                [metrics.BASE_KEY, metrics.LAST_FINISHED_KEY, metrics.POOLS_INDEX_KEY]
            )
        except Exception:  # tests that break Redis on purpose
            pass

    clear()
    yield
    clear()


def same_prefix() -> dict[str, str]:
    """Worker env with this process's queue and cache prefix.

    The root conftest picks a fresh REDIS_PREFIX, but pytest-django may have
    imported the settings before it ran; workers would then watch another
    queue than the one this process enqueues to (and report their status
    under another key), leaving every message to the reaper's re-send.
    """
    return {"REDIS_PREFIX": settings.REDIS_PREFIX}


def scrape(client: Client | None = None, **headers: str) -> Samples:
    """Every sample of /metrics keyed by (name, labels)."""
    metrics.collector.reset()
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content[:500]
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def sqlite_rows(path: str, table: str, rows: int) -> None:
    """A source table of ``rows`` rows in an SQLite file under DATA_ROOT."""
    with sqlite3.connect(Path(settings.DATA_ROOT) / path) as conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(i, f"n{i}") for i in range(rows)])


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test only, to stop and start (never the shared 6379)."""
    try:
        server = PrivateRedis()
    except FileNotFoundError as exc:
        missing(f"{exc} binary")
        raise
    server.start()
    yield server
    server.kill()
