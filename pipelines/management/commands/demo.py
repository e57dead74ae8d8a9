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
from pipelines.tasktypes.python import SETTING, refusal

DEMO_PACKAGE = "datadog_demo"

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

# A sensor waits for a file in the inbox, a copy loads it, a python step
# (datadog_demo.jobs, allowed by PYTHON_TASK_MODULES) summarizes it and
# records an asset event, which starts DROP_EXPORT.
DROP_ZONE: dict[str, Any] = {
    "name": "demo_drop_zone",
    "description": "Wait for a file of orders in the inbox, load it, summarize it in Python",
    "tags": ["demo"],
    "tasks": [
        {
            "name": "orders_dropped",
            "type": "wait",
            "connection": "demo_inbox",
            "file": "orders_drop.csv",
            "interval": 5,
            "timeout": 3600,
        },
        {
            "name": "load_drop",
            "type": "copy",
            "source": {"connection": "demo_inbox", "table": "orders_drop.csv"},
            "destination": {
                "connection": "demo_warehouse",
                "table": "drop_orders",
                "mode": "replace",
            },
            "depends_on": ["orders_dropped"],
        },
        {
            "name": "summarize",
            "type": "python",
            "callable": f"{DEMO_PACKAGE}.jobs:summarize_drop",
            "connections": ["demo_warehouse"],
            "kwargs": {"rows": {"output": ["load_drop", "rows_written"]}},
            "outlets": ["demo_warehouse.main.drop_summary"],
            "depends_on": ["load_drop"],
        },
    ],
}

DROP_EXPORT: dict[str, Any] = {
    "name": "demo_drop_export",
    "description": "Export the drop summary to CSV each time the python step rewrites it",
    "tags": ["demo"],
    "schedule": {"assets": ["demo_warehouse.main.drop_summary"]},
    "tasks": [
        {
            "name": "export_summary",
            "type": "copy",
            "source": {"connection": "demo_warehouse", "table": "drop_summary"},
            "destination": {
                "connection": "demo_files",
                "table": "drop_summary.csv",
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


def _write_drop(path: Any) -> None:
    """The file the drop-zone sensor waits for: a few orders, as CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id,email,amount,status"] + [
        f"{i},buyer{i}@example.com,{10 * i}.50,{('paid', 'refunded')[i % 2]}" for i in range(1, 21)
    ]
    path.write_text("\n".join(lines) + "\n")


class Command(AuditedCommand):
    help = (
        "Create demo connections (SQLite, CSV) and the demo pipelines. Idempotent. "
        "--drop puts the file the demo_drop_zone sensor waits for into its inbox."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rows", type=int, default=5000)
        parser.add_argument(
            "--drop",
            action="store_true",
            help="only write demo/inbox/orders_drop.csv (what demo_drop_zone waits for)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root = settings.DATA_ROOT / "demo"
        if options["drop"]:
            _write_drop(root / "inbox" / "orders_drop.csv")
            self.stdout.write("dropped demo/inbox/orders_drop.csv: demo_drop_zone goes on")
            return
        _make_shop(root / "shop.sqlite", options["rows"])
        for folder in ("out", "inbox"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for name, kind, path in [
            ("demo_shop", "sqlite", "demo/shop.sqlite"),
            ("demo_warehouse", "sqlite", "demo/warehouse.sqlite"),
            ("demo_files", "csv", "demo/out"),
            ("demo_inbox", "csv", "demo/inbox"),
        ]:
            if not Connection.objects.filter(name=name).exists():
                connection_create(name=name, kind=kind, config={"path": path})
        specs = [ORDERS_DAILY, EXPORT_CSV]
        python_off = refusal(f"{DEMO_PACKAGE}.jobs")
        if python_off is None:
            specs += [DROP_ZONE, DROP_EXPORT]
        for spec in specs:
            existing = Pipeline.objects.filter(name=spec["name"]).first()
            if existing:
                pipeline_update(pipeline=existing, data=spec)
            else:
                pipeline_create(data=spec)
        self.stdout.write(
            "demo ready: connections demo_shop, demo_warehouse, demo_files, demo_inbox; "
            "pipelines " + ", ".join(spec["name"] for spec in specs)
        )
        if python_off is None:
            self.stdout.write(
                "demo_drop_zone waits for a file: run it, then `manage.py demo --drop`; "
                "its python step then starts demo_drop_export through an asset"
            )
        else:
            self.stdout.write(
                f"demo_drop_zone and demo_drop_export left out: {python_off}; "
                f"set {SETTING}={DEMO_PACKAGE} to add them"
            )
