"""A TaskContext over in-memory dicts, and source/destination fixtures.

Connector-level tests drive task types and the copy engine directly with
this context; end-to-end tests through real workers live elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import pools
from connectors.csv import CsvConnector
from connectors.jsonl import JsonlConnector
from connectors.mysql import MysqlConnector
from connectors.postgresql import PostgresqlConnector
from connectors.sqlite import SqliteConnector
from pipelines.tasktypes.base import TaskCancelled
from tests.factories import pg_config
from tests.services import scratch_mysql_db, scratch_postgres_db


class Interrupt(Exception):
    """Raised by the test context's check() to simulate a crash mid-copy."""


class FakeContext:
    """Implements the TaskContext protocol over dicts shared between attempts.

    ``store`` holds checkpoints and watermarks so a second context made with
    the same store sees what the first one saved (a retried attempt).
    ``fail_after_checks=N`` raises Interrupt at the N-th check (a crash).
    """

    def __init__(
        self,
        task: dict[str, Any],
        connections: dict[str, Any] | None = None,
        *,
        store: dict[str, Any] | None = None,
        execution_id: str | None = None,
        attempt: int = 1,
        chunk: tuple[int, int] | None = None,
        params: dict[str, Any] | None = None,
        fail_after_checks: int | None = None,
        cancel_after_checks: int | None = None,
        timeout: float = 600,
    ) -> None:
        self.execution_id = execution_id or str(uuid.uuid4())
        self.pipeline_id = "p1"
        self.pipeline_name = "test_pipeline"
        self.task_id = str(uuid.uuid4())
        self.task_name = task.get("name", "t")
        self.attempt = attempt
        # As if a retry may follow (so copies stage); 0: the last attempt.
        self.retries_left = 1
        self.task = task
        self.params = {"execution_id": self.execution_id, **(params or {})}
        self.metrics: dict[str, Any] = {}
        self.chunk = chunk
        self.connections = connections or {}
        self.store = store if store is not None else {}
        self.logs: list[tuple[str, str]] = []
        self.checks = 0
        self.fail_after_checks = fail_after_checks
        self.cancel_after_checks = cancel_after_checks
        self.deadline = time.monotonic() + timeout
        self.staged: Any = None

    def connection(self, name: str) -> Any:
        return self.connections[name]

    def log(self, message: str, level: str = "INFO") -> None:
        self.logs.append((level, message))

    def check(self) -> None:
        self.checks += 1
        if self.fail_after_checks is not None and self.checks >= self.fail_after_checks:
            raise Interrupt(f"crash after {self.checks} checks")
        if self.cancel_after_checks is not None and self.checks >= self.cancel_after_checks:
            raise TaskCancelled("cancelled")

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def checkpoint_load(self) -> dict[str, Any] | None:
        return self.store.get(("checkpoint", self.execution_id, self.task_name, self.chunk))

    def checkpoint_save(self, state: dict[str, Any]) -> None:
        self.store[("checkpoint", self.execution_id, self.task_name, self.chunk)] = state

    def watermark_load(self) -> Any:
        return self.store.get(("watermark", self.task_name))

    def watermark_stage(self, value: Any) -> None:
        self.staged = value

    def succeed(self) -> None:
        """What the engine does when the run succeeds: commit the staged watermark."""
        if self.staged is not None:
            self.store[("watermark", self.task_name)] = self.staged


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_postgres_db() as url:
        yield url
        pools.close_all()


@pytest.fixture
def pg2_url() -> Iterator[str]:
    with scratch_postgres_db() as url:
        yield url
        pools.close_all()


@pytest.fixture
def pg(pg_url: str) -> PostgresqlConnector:
    return PostgresqlConnector(name="pg", config=pg_config(pg_url))


@pytest.fixture
def pg2(pg2_url: str) -> PostgresqlConnector:
    return PostgresqlConnector(name="pg2", config=pg_config(pg2_url))


@pytest.fixture
def my() -> Iterator[MysqlConnector]:
    with scratch_mysql_db() as kwargs:
        yield MysqlConnector(
            name="my",
            config={
                "host": kwargs["host"],
                "port": kwargs["port"],
                "database": kwargs["database"],
                "username": kwargs["user"],
                "password": kwargs["password"] or None,
            },
        )


@pytest.fixture
def lite(data_root: Path) -> SqliteConnector:
    return SqliteConnector(name="lite", config={"path": "db/test.sqlite3"}, data_root=data_root)


@pytest.fixture
def csvc(data_root: Path) -> CsvConnector:
    (data_root / "csv").mkdir()
    return CsvConnector(name="files_csv", config={"path": "csv"}, data_root=data_root)


@pytest.fixture
def jsonlc(data_root: Path) -> JsonlConnector:
    (data_root / "jsonl").mkdir()
    return JsonlConnector(name="files_jsonl", config={"path": "jsonl"}, data_root=data_root)


def normalize(value: Any) -> str:
    """One spelling per value across kinds, for checksums (12.50 == 12.5, True == 1)."""
    from decimal import Decimal

    from connectors.types import text_of

    if value is None:
        return "∅"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | Decimal):
        d = Decimal(str(value))
        return format(d.normalize(), "f") if d == d.to_integral() else str(d.normalize())
    if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
        value = value.astimezone(__import__("datetime").UTC).replace(tzinfo=None)
    return text_of(value) or ""


def checksum(rows: list[tuple]) -> tuple[int, str]:
    """``(count, sha256)`` of rows sorted by their normalized text."""
    lines = sorted("|".join(normalize(v) for v in row) for row in rows)
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def run(task: dict[str, Any], connections: dict[str, Any], **kwargs: Any) -> FakeContext:
    """Run a copy task through the CopyTask type; the context (metrics, logs)."""
    from pipelines.tasktypes.copy import CopyTask

    ctx = FakeContext(task, connections, **kwargs)
    CopyTask().run(ctx)
    ctx.succeed()
    return ctx


def copy_task(
    src: str, dst: str, source: dict[str, Any], destination: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "name": extra.pop("name", "copy_t"),
        "type": "copy",
        "source": {"connection": src, **source},
        "transformations": extra.pop("transformations", []),
        "destination": {"connection": dst, "mode": "append", "keys": [], **destination},
        "incremental": extra.pop("incremental", None),
        "partition": extra.pop("partition", None),
        "batch_size": extra.pop("batch_size", 50000),
        **extra,
    }


Fixture = Callable[..., Any]
os.environ.setdefault("DATADOG_TESTING", "1")


def diff(a: list[tuple], b: list[tuple]) -> tuple[list[str], list[str]]:
    """Rows only in ``a`` and only in ``b`` (normalized), for assertion messages."""
    sa = {"|".join(normalize(v) for v in r) for r in a}
    sb = {"|".join(normalize(v) for v in r) for r in b}
    return sorted(sa - sb)[:3], sorted(sb - sa)[:3]
