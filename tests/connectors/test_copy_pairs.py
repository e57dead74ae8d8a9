"""Copies between kinds: the destination equals the same query on the source."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.connectors import data
from tests.connectors.conftest import checksum, copy_task, run

PICK = [
    {"name": "nn", "function": "filter", "params": {"columns": ["email"]}},
    {"name": "big", "function": "filter", "params": {"where": [["amount", ">=", 100]]}},
    {
        "name": "pick",
        "function": "select",
        "params": {"columns": ["id", "email", "amount", "created_at"]},
    },
    {"name": "ren", "function": "rename", "params": {"mapping": {"amount": "total"}}},
]
PICK_SQL = (
    "SELECT id, email, amount AS total, created_at FROM orders WHERE email"
    " IS NOT NULL AND amount >= 100"
)
PICK_COLS = "id, email, total, created_at"


def expected_rows(rows: list[tuple]) -> list[tuple]:
    return [(r[0], r[3], r[4], r[5]) for r in rows if r[3] is not None and r[4] >= 100]


def test_it_copies_pg_to_pg_with_pushdown_and_binary_passthrough(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "copied"}, transformations=PICK)
    ctx = run(task, {"src": pg, "dst": pg2})
    expected = checksum(pg.query(PICK_SQL)[1])
    assert checksum(pg2.query(f"SELECT {PICK_COLS} FROM copied")[1]) == expected
    assert ctx.metrics["rows_written"] == expected[0]
    assert any("pass-through" in m for _, m in ctx.logs)


def test_it_copies_pg_to_pg_through_batches_too(pg: Any, pg2: Any) -> None:
    from connectors.copy import run_copy
    from tests.connectors.conftest import FakeContext

    data.load_pg(pg)
    task = copy_task(
        "src", "dst", {"table": "orders"}, {"table": "copied"}, transformations=PICK, batch_size=37
    )
    ctx = FakeContext(task)
    result = run_copy(ctx, pg, pg2, pushdown=False, passthrough=False)
    assert not result["passthrough"]
    expected = checksum(pg.query(PICK_SQL)[1])
    assert checksum(pg2.query(f"SELECT {PICK_COLS} FROM copied")[1]) == expected


def test_it_copies_pg_to_mysql(pg: Any, my: Any) -> None:
    data.load_pg(pg)
    run(
        copy_task("src", "dst", {"table": "orders"}, {"table": "copied"}, transformations=PICK),
        {"src": pg, "dst": my},
    )
    assert checksum(my.query(f"SELECT {PICK_COLS} FROM copied")[1]) == checksum(
        pg.query(PICK_SQL)[1]
    )


def test_it_copies_mysql_to_pg(my: Any, pg: Any) -> None:
    data.load_mysql(my)
    run(
        copy_task("src", "dst", {"table": "orders"}, {"table": "copied"}, transformations=PICK),
        {"src": my, "dst": pg},
    )
    got = pg.query(f"SELECT {PICK_COLS} FROM copied")[1]
    assert checksum(got) == checksum(my.query(PICK_SQL)[1])
    assert len(got) > 0


def test_it_copies_pg_to_csv_and_back(pg: Any, pg2: Any, csvc: Any) -> None:
    rows = data.load_pg(pg)
    run(
        copy_task("src", "dst", {"table": "orders"}, {"table": "orders.csv", "mode": "replace"}),
        {"src": pg, "dst": csvc},
    )
    assert (csvc.directory() / "orders.csv").exists()
    run(
        copy_task("src", "dst", {"table": "orders.csv"}, {"table": "back"}),
        {"src": csvc, "dst": pg2},
    )
    got = pg2.query(f"SELECT {', '.join(data.COLUMNS)} FROM back")[1]
    assert checksum(got) == checksum(rows)


def test_it_copies_csv_to_pg_with_transformations(csvc: Any, pg: Any) -> None:
    rows = data.write_csv(csvc.directory() / "orders.csv")
    run(
        copy_task("src", "dst", {"table": "orders.csv"}, {"table": "copied"}, transformations=PICK),
        {"src": csvc, "dst": pg},
    )
    assert checksum(pg.query(f"SELECT {PICK_COLS} FROM copied")[1]) == checksum(expected_rows(rows))


def test_it_copies_jsonl_to_sqlite(jsonlc: Any, lite: Any) -> None:
    rows = data.write_jsonl(jsonlc.directory() / "orders.jsonl")
    run(
        copy_task(
            "src", "dst", {"table": "orders.jsonl"}, {"table": "copied"}, transformations=PICK
        ),
        {"src": jsonlc, "dst": lite},
    )
    got = lite.query(f"SELECT {PICK_COLS} FROM copied")[1]
    # SQLite keeps timestamps as ISO text; parse them back for the comparison.
    from connectors.types import parser_for

    parse = parser_for("timestamptz")
    got = [(r[0], r[1], Decimal(r[2]), parse(r[3])) for r in got]
    assert checksum(got) == checksum(expected_rows(rows))


def test_it_copies_sqlite_to_pg(lite: Any, pg: Any) -> None:
    rows = data.load_sqlite(lite)
    run(
        copy_task("src", "dst", {"table": "orders"}, {"table": "copied"}, transformations=PICK),
        {"src": lite, "dst": pg},
    )
    assert checksum(pg.query(f"SELECT {PICK_COLS} FROM copied")[1]) == checksum(expected_rows(rows))
    types = dict(
        pg.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name ="
            " 'copied'"
        )[1]
    )
    assert types["total"] == "numeric" and types["created_at"].startswith("timestamp")


def test_it_copies_mysql_to_jsonl(my: Any, jsonlc: Any) -> None:
    rows = data.load_mysql(my)
    run(
        copy_task("src", "dst", {"table": "orders"}, {"table": "o.jsonl"}, transformations=PICK),
        {"src": my, "dst": jsonlc},
    )
    import json

    lines = [json.loads(line) for line in (jsonlc.directory() / "o.jsonl").read_text().splitlines()]
    assert len(lines) == len(expected_rows(rows))
    assert set(lines[0]) == {"id", "email", "total", "created_at"}


@pytest.mark.parametrize("query_param", [100, 500])
def test_it_copies_from_a_query_with_bound_parameters(pg: Any, pg2: Any, query_param: int) -> None:
    data.load_pg(pg)
    task = copy_task(
        "src",
        "dst",
        {"query": "SELECT id, amount FROM orders WHERE amount >= %(min_amount)s"},
        {"table": "copied"},
        transformations=[
            {
                "name": "f",
                "function": "filter",
                "params": {"where": [["id", "<", {"param": "max_id"}]]},
            }
        ],
    )
    run(task, {"src": pg, "dst": pg2}, params={"min_amount": query_param, "max_id": 300})
    expected = pg.query(
        "SELECT id, amount FROM orders WHERE amount >= %(a)s AND id < 300", {"a": query_param}
    )[1]
    assert checksum(pg2.query("SELECT id, amount FROM copied")[1]) == checksum(expected)
