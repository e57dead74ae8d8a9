"""The same small ``orders`` table on every kind, for comparisons."""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

COLUMNS = ["id", "account_id", "name", "email", "amount", "created_at", "active", "attrs"]


def orders(n: int = 500) -> list[tuple]:
    """Deterministic rows; every 17th email is NULL, some duplicate account ids."""
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(1, n + 1):
        rows.append(
            (
                i,
                1_000_000_000_000 + (i * 7919) % 97,
                f"name {i:05d}",
                None if i % 17 == 0 else f"user{i}@example.com",
                Decimal(f"{(i * 37) % 1000}.{i % 100:02d}"),
                base + dt.timedelta(minutes=i * 13),
                i % 3 != 0,
                {"tier": i % 5, "src": "web"},
            )
        )
    return rows


def load_pg(connector: Any, table: str = "orders", rows: list[tuple] | None = None) -> list[tuple]:
    rows = orders() if rows is None else rows
    connector.execute(
        f"CREATE TABLE {table} (id integer PRIMARY KEY, account_id bigint NOT NULL, name text,"
        " email varchar(120), amount numeric(12,2), created_at timestamptz, active boolean,"
        " attrs jsonb)"
    )
    insert_pg(connector, table, rows)
    return rows


def insert_pg(connector: Any, table: str, rows: list[tuple]) -> None:
    from psycopg.types.json import Jsonb

    conn = connector.direct_connect()
    with conn:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(*r[:7], Jsonb(r[7])) for r in rows],
            )
    conn.close()


def load_mysql(
    connector: Any, table: str = "orders", rows: list[tuple] | None = None
) -> list[tuple]:
    rows = orders() if rows is None else rows
    connector.execute(
        f"CREATE TABLE {table} (id INT PRIMARY KEY, account_id BIGINT NOT NULL, name TEXT,"
        " email VARCHAR(120), amount DECIMAL(12,2), created_at DATETIME(6), active BOOLEAN,"
        " attrs JSON)"
    )
    from connectors.mysql import to_mysql_value

    with connector.connect() as conn:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [tuple(to_mysql_value(v) for v in r) for r in rows],
            )
    return rows


def load_sqlite(
    connector: Any, table: str = "orders", rows: list[tuple] | None = None
) -> list[tuple]:
    rows = orders() if rows is None else rows
    connector.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, account_id BIGINT NOT NULL, name TEXT,"
        " email VARCHAR(120), amount DECIMAL(12,2), created_at TIMESTAMPTZ, active BOOLEAN,"
        " attrs JSON)"
    )
    from connectors.sqlite import to_sqlite_value

    with connector.connect() as conn:
        conn.raw.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(to_sqlite_value(v) for v in r) for r in rows],
        )
    return rows


def write_csv(path: Path, rows: list[tuple] | None = None) -> list[tuple]:
    rows = orders() if rows is None else rows
    from connectors.types import text_of

    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if v is None else text_of(v) for v in r])
    return rows


def write_jsonl(path: Path, rows: list[tuple] | None = None) -> list[tuple]:
    rows = orders() if rows is None else rows
    from connectors.types import json_default

    with path.open("w") as handle:
        for r in rows:
            handle.write(
                json.dumps(dict(zip(COLUMNS, r, strict=True)), default=json_default) + "\n"
            )
    return rows
