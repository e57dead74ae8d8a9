"""Sample connections and pipelines that run on the embedded default."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from accounts.commands import AuditedCommand
from connectors.models import Connection
from connectors.services import connection_create
from pipelines.models import Pipeline
from pipelines.services import pipeline_create, pipeline_update

ORDERS_DAILY: dict[str, Any] = {
    "name": "demo_orders_daily",
    "description": "Copy paid orders into the warehouse, total them per day, check the result",
    "schedule": "0 2 * * *",
    "tags": ["demo", "nightly"],
    "parameters": {"min_amount": 100},
    "tasks": [
        {
            "name": "copy_orders",
            "type": "copy",
            "source": {"connection": "demo_shop", "table": "orders"},
            "transformations": [
                {"name": "no_null_email", "function": "filter", "params": {"columns": ["email"]}},
                {
                    "name": "big_only",
                    "function": "filter",
                    "params": {"where": [["amount", ">=", {"param": "min_amount"}]]},
                },
                {
                    "name": "pick",
                    "function": "select",
                    "params": {"columns": ["id", "email", "amount", "created_at"]},
                },
                {
                    "name": "rename",
                    "function": "rename",
                    "params": {"mapping": {"amount": "total"}},
                },
            ],
            "destination": {
                "connection": "demo_warehouse",
                "table": "orders",
                "mode": "upsert",
                "keys": ["id"],
            },
            "retries": 2,
        },
        {
            "name": "daily_totals",
            "type": "sql",
            "connection": "demo_warehouse",
            "sql": [
                "CREATE TABLE IF NOT EXISTS daily_totals "
                "(day TEXT PRIMARY KEY, orders INTEGER, total NUMERIC)",
                "DELETE FROM daily_totals",
                "INSERT INTO daily_totals SELECT substr(created_at, 1, 10), count(*), sum(total) "
                "FROM orders GROUP BY 1",
            ],
            "depends_on": ["copy_orders"],
        },
        {
            "name": "orders_ok",
            "type": "check",
            "connection": "demo_warehouse",
            "table": "orders",
            "checks": [{"row_count": {"min": 1}}, {"not_null": ["email"]}, {"unique": ["id"]}],
            "depends_on": ["daily_totals"],
        },
    ],
}

EXPORT_CSV: dict[str, Any] = {
    "name": "demo_export_csv",
    "description": "Export the daily totals to a CSV file",
    "tags": ["demo"],
    "tasks": [
        {
            "name": "export_totals",
            "type": "copy",
            "source": {"connection": "demo_warehouse", "table": "daily_totals"},
            "destination": {
                "connection": "demo_files",
                "table": "daily_totals.csv",
                "mode": "replace",
            },
        }
    ],
}


def _make_shop(path: Any, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)  # the same data every time  # nosec B311 - demo data
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS orders")
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, amount NUMERIC, "
            "status TEXT, created_at TEXT)"
        )
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
            [
                (
                    i,
                    None if i % 17 == 0 else f"customer{i % 500}@example.com",
                    round(rng.uniform(1, 500), 2),
                    rng.choice(["paid", "refunded", "pending"]),
                    (start + timedelta(minutes=37 * i)).isoformat(),
                )
                for i in range(1, rows + 1)
            ],
        )


class Command(AuditedCommand):
    help = "Create demo connections (SQLite, CSV) and two demo pipelines. Idempotent."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rows", type=int, default=5000)

    def handle(self, *args: Any, **options: Any) -> None:
        root = settings.DATA_ROOT / "demo"
        _make_shop(root / "shop.sqlite", options["rows"])
        (root / "out").mkdir(parents=True, exist_ok=True)
        for name, kind, path in [
            ("demo_shop", "sqlite", "demo/shop.sqlite"),
            ("demo_warehouse", "sqlite", "demo/warehouse.sqlite"),
            ("demo_files", "csv", "demo/out"),
        ]:
            if not Connection.objects.filter(name=name).exists():
                connection_create(name=name, kind=kind, config={"path": path})
        for spec in (ORDERS_DAILY, EXPORT_CSV):
            existing = Pipeline.objects.filter(name=spec["name"]).first()
            if existing:
                pipeline_update(pipeline=existing, data=spec)
            else:
                pipeline_create(data=spec)
        self.stdout.write(
            "demo ready: connections demo_shop, demo_warehouse, demo_files; "
            "pipelines demo_orders_daily, demo_export_csv"
        )
