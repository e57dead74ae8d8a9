"""Where a resumable (staged) copy spends the time it costs over an unstaged one.

    .venv/bin/python bench/copy_resume.py [--rows 400000] [--runs 2]

Builds a PostgreSQL table ``src`` of ``--rows`` rows with a primary key in a
scratch database and copies it, in this process, with ``bench/copy.py``'s
push-down transformations into a scratch destination, alternately:

- ``unstaged``: as one chunk of a partitioned copy (partitioned copies never
  stage: one transaction, raw COPY);
- ``staged``: unpartitioned, so it reads ``batch_size`` (50,000) key ranges,
  commits each into the stage with a batch marker, and moves the stage into
  the table at the end (``connectors.copy.resume``).

It prints each copy's wall time and the seconds spent in the staged path's
parts: the range bounds (``next_bound``), the batch commits, the final move
of the stage into the table (``_move_stage``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: this directory first on sys.path would shadow stdlib ``copy``.
_HERE = str(Path(__file__).resolve().parent)
if sys.path and sys.path[0] in (_HERE, ""):
    sys.path.pop(0)
sys.path.insert(0, str(Path(_HERE).parent))

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402

from connectors import pools  # noqa: E402
from connectors.copy import run_copy, sql_sink, sql_source  # noqa: E402
from connectors.postgresql import PostgresqlConnector  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_copy", Path(_HERE) / "copy.py")
assert _spec is not None and _spec.loader is not None  # nosec B101 - a script's own file
bench_copy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_copy)

ADMIN = bench_copy.PG_ADMIN


def _timed(owner: Any, name: str, into: dict[str, float]) -> None:
    """Wrap ``owner.name`` so the seconds spent in it add up in ``into[name]``."""
    inner: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            into[name] = into.get(name, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    src, dst = (f"bench_resume_{side}_{uuid.uuid4().hex[:6]}" for side in ("s", "d"))
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {src}")
        conn.execute(f"CREATE DATABASE {dst}")
    parts: dict[str, float] = {}
    for owner, name in (
        (sql_source, "next_bound"),
        (sql_sink.SqlSink, "commit_batch"),
        (sql_sink.SqlSink, "_move_stage"),
    ):
        _timed(owner, name, parts)
    walls: dict[str, list[float]] = {"unstaged": [], "staged": []}
    try:
        with psycopg.connect(bench_copy._url(src), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE src AS SELECT g AS id, g % 1000 AS account_id,"
                " 'name ' || g AS name, 'e' || g || '@example.org' AS email,"
                " (g % 500)::numeric(10,2) AS amount,"
                " timestamptz '2026-01-01' + g * interval '1 s' AS created_at"
                f" FROM generate_series(1, {int(args.rows)}) g"
            )
            conn.execute("ALTER TABLE src ADD PRIMARY KEY (id)")
            conn.execute("VACUUM ANALYZE src")

        def connector(db: str) -> PostgresqlConnector:
            config = {"host": "127.0.0.1", "port": 5432, "database": db, "username": "postgres"}
            return PostgresqlConnector(name=db, config=config)

        for _ in range(args.runs):
            for label, chunk in (("unstaged", (0, 1)), ("staged", None)):
                with psycopg.connect(bench_copy._url(dst), autocommit=True) as conn:
                    conn.execute("DROP TABLE IF EXISTS dst")
                parts.clear()
                task = {
                    "name": "bench_copy",
                    "type": "copy",
                    "source": {"connection": "src", "table": "src"},
                    "transformations": bench_copy.TRANSFORMATIONS,
                    "destination": {"connection": "dst", "table": "dst", "mode": "append"},
                    "incremental": None,
                    "partition": {"column": "id", "chunks": 1} if chunk else None,
                    "batch_size": 50_000,
                    "retries": 1,  # the staged path: a later attempt may resume
                }
                ctx = bench_copy.BenchContext(task, chunk, str(uuid.uuid4()))
                started = time.perf_counter()
                result = run_copy(ctx, connector(src), connector(dst))
                walls[label].append(time.perf_counter() - started)
                seconds = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(parts.items()))
                print(
                    f"{label}: {walls[label][-1]:.2f} s, {result['rows_written']} rows"
                    + (f" ({seconds})" if seconds else ""),
                    flush=True,
                )
        medians = {k: statistics.median(v) for k, v in walls.items()}
        print(
            "medians: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in medians.items())
            + f"; staged/unstaged {medians['staged'] / medians['unstaged']:.2f}x"
        )
    finally:
        pools.close_all()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {src} WITH (FORCE)")
            conn.execute(f"DROP DATABASE IF EXISTS {dst} WITH (FORCE)")


if __name__ == "__main__":
    main()
