"""Each transformation, pushed down (PostgreSQL, MariaDB, SQLite) and on batches.

The reference is the same transformation written by hand in SQL on the
source; push-down and the batch path must both give its rows.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from connectors.copy import run_copy
from tests.connectors import data
from tests.connectors.conftest import FakeContext, checksum, copy_task, diff

SELECT_ID_EMAIL = {"name": "s", "function": "select", "params": {"columns": ["id", "email"]}}
CASES: dict[str, tuple[list[dict[str, Any]], str | None]] = {
    "filter_columns": (
        [{"name": "f", "function": "filter", "params": {"columns": ["email"]}}, SELECT_ID_EMAIL],
        "SELECT id, email FROM orders WHERE email IS NOT NULL",
    ),
    "filter_where_ops": (
        [
            {
                "name": "f",
                "function": "filter",
                "params": {
                    "where": [
                        ["amount", ">", 10],
                        ["amount", "<=", 900],
                        ["id", "!=", 5],
                        ["id", "not_in", [7, 8]],
                        ["account_id", "in", [1000000000010, 1000000000020, 1000000000030]],
                        ["name", "like", "name 0%"],
                        ["email", "not_null"],
                    ]
                },
            },
            SELECT_ID_EMAIL,
        ],
        "SELECT id, email FROM orders WHERE amount > 10 AND amount <= 900 AND id <> 5"
        " AND id NOT IN (7, 8) AND account_id IN (1000000000010, 1000000000020, 1000000000030)"
        " AND name LIKE 'name 0%%' AND email IS NOT NULL",
    ),
    "filter_is_null": (
        [
            {
                "name": "f",
                "function": "filter",
                "params": {"where": [["email", "is_null"], ["id", ">=", 17]]},
            },
            SELECT_ID_EMAIL,
        ],
        "SELECT id, email FROM orders WHERE email IS NULL AND id >= 17",
    ),
    "select_rename": (
        [
            {"name": "s", "function": "select", "params": {"columns": ["email", "id"]}},
            {"name": "r", "function": "rename", "params": {"mapping": {"email": "contact"}}},
        ],
        "SELECT email AS contact, id FROM orders",
    ),
    "cast": (
        [
            {
                "name": "c",
                "function": "cast",
                "params": {"columns": {"amount": "integer", "id": "text"}},
            },
            {"name": "s", "function": "select", "params": {"columns": ["id", "amount"]}},
        ],
        None,  # computed in Python: casting rounds differently per kind
    ),
    "dedupe": (
        [
            {"name": "s", "function": "select", "params": {"columns": ["account_id"]}},
            {"name": "d", "function": "dedupe", "params": {"keys": ["account_id"]}},
        ],
        "SELECT DISTINCT account_id FROM orders",
    ),
    "mask_redact": (
        [
            {"name": "m", "function": "mask", "params": {"columns": ["email"], "method": "redact"}},
            {"name": "s", "function": "select", "params": {"columns": ["id", "email"]}},
        ],
        "SELECT id, NULL AS email FROM orders",
    ),
    "aggregate": (
        [
            {
                "name": "a",
                "function": "aggregate",
                "params": {
                    "group_by": ["active"],
                    "metrics": {
                        "n": ["count", "*"],
                        "emails": ["count", "email"],
                        "total": ["sum", "amount"],
                        "lo": ["min", "amount"],
                        "hi": ["max", "id"],
                    },
                },
            }
        ],
        "SELECT active, COUNT(*), COUNT(email), SUM(amount), MIN(amount), MAX(id) FROM orders"
        " GROUP BY active",
    ),
}


def _loaded(kind: str, request: Any) -> Any:
    connector = request.getfixturevalue({"postgresql": "pg", "mysql": "my", "sqlite": "lite"}[kind])
    {"postgresql": data.load_pg, "mysql": data.load_mysql, "sqlite": data.load_sqlite}[kind](
        connector
    )
    return connector


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("pushdown", [True, False], ids=["pushdown", "batches"])
def test_it_applies_each_transformation(
    kind: str, case: str, pushdown: bool, request: Any, csvc: Any
) -> None:
    source = _loaded(kind, request)
    transformations, reference = CASES[case]
    # A JSONL destination keeps the values as the engine produced them.
    jsonl = request.getfixturevalue("jsonlc")
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "out.jsonl", "mode": "replace"},
        transformations=transformations,
        batch_size=41,
    )
    ctx = FakeContext(task)
    run_copy(ctx, source, jsonl, pushdown=pushdown)
    import json

    lines = [
        json.loads(line) for line in (jsonl.directory() / "out.jsonl").read_text().splitlines()
    ]
    got = [tuple(obj.values()) for obj in lines]
    if reference is None:
        rows = data.orders()
        expected = [(str(r[0]), _round(r[4], kind, pushdown)) for r in rows]
        got = [(str(a), int(b)) for a, b in got]
    else:
        expected = source.query(reference)[1]
    got = [tuple(_num(v) for v in r) for r in got]
    expected = [tuple(_num(v) for v in r) for r in expected]
    assert checksum(got) == checksum(expected), diff(got, expected)


def _round(value: Any, kind: str, pushdown: bool) -> int:
    from decimal import ROUND_DOWN, ROUND_HALF_UP

    # PostgreSQL, MariaDB and the batch path round half away from zero;
    # SQLite's own CAST truncates.
    truncate = kind == "sqlite" and pushdown
    return int(value.quantize(1, rounding=ROUND_DOWN if truncate else ROUND_HALF_UP))


def _num(value: Any) -> Any:
    """JSONL keeps decimals as strings and booleans as 0/1 may come back from SQL."""
    from decimal import Decimal, InvalidOperation

    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        # A float sum from SQLite, carried as a decimal string.
        return number.quantize(Decimal("0.01")) if number.as_tuple().exponent < -6 else number
    if isinstance(value, float):
        # SQLite sums decimals as floats; the engine sums them exactly.
        return Decimal(repr(value)).quantize(Decimal("0.01"))
    return value


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_it_masks_with_sha256_the_same_everywhere(kind: str, request: Any, jsonlc: Any) -> None:
    source = _loaded(kind, request)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "m.jsonl", "mode": "replace"},
        transformations=[
            {"name": "s", "function": "select", "params": {"columns": ["id", "email", "name"]}},
            {
                "name": "m",
                "function": "mask",
                "params": {"columns": ["email", "name"], "method": "sha256"},
            },
        ],
    )
    ctx = FakeContext(task)
    run_copy(ctx, source, jsonlc)
    import json

    lines = {
        o["id"]: o
        for o in map(json.loads, (jsonlc.directory() / "m.jsonl").read_text().splitlines())
    }
    for row in data.orders():
        email = None if row[3] is None else hashlib.sha256(row[3].encode()).hexdigest()
        assert lines[row[0]]["email"] == email
        assert lines[row[0]]["name"] == hashlib.sha256(row[2].encode()).hexdigest()


def test_it_runs_sqlite_sha256_on_batches_and_the_rest_after_it(lite: Any, pg: Any) -> None:
    data.load_sqlite(lite)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "masked"},
        transformations=[
            {"name": "f", "function": "filter", "params": {"where": [["id", "<=", 100]]}},
            {"name": "m", "function": "mask", "params": {"columns": ["email"], "method": "sha256"}},
            {"name": "s", "function": "select", "params": {"columns": ["id", "email"]}},
        ],
    )
    ctx = FakeContext(task)
    run_copy(ctx, lite, pg)
    assert any("step(s) on batches" in m for _, m in ctx.logs)
    got = dict(pg.query("SELECT id, email FROM masked")[1])
    assert len(got) == 100
    assert got[1] == hashlib.sha256(b"user1@example.com").hexdigest()
    assert got[17] is None


def test_it_refuses_unknown_columns_in_transformations(pg: Any, pg2: Any) -> None:
    from connectors.base import ConnectorError

    data.load_pg(pg)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "x"},
        transformations=[{"name": "pick", "function": "select", "params": {"columns": ["nope"]}}],
    )
    with pytest.raises(
        ConnectorError, match=r"transformations\[0\] \(pick\): unknown column 'nope'"
    ):
        run_copy(FakeContext(task), pg, pg2)


@pytest.mark.parametrize(
    "steps",
    [
        [
            {
                "name": "m",
                "function": "mask",
                "params": {"columns": ["name", "email"], "method": "sha256"},
            }
        ],
        [
            {"name": "f", "function": "filter", "params": {"columns": ["email"]}},
            {"name": "s", "function": "select", "params": {"columns": ["email", "id", "name"]}},
            {"name": "m", "function": "mask", "params": {"columns": ["name"], "method": "sha256"}},
            {"name": "r", "function": "mask", "params": {"columns": ["email"], "method": "redact"}},
        ],
        [
            {"name": "s", "function": "select", "params": {"columns": ["account_id"]}},
            {"name": "d", "function": "dedupe", "params": {}},
        ],
    ],
    ids=["mask", "filter-select-mask-redact", "dedupe"],
)
def test_it_runs_leftover_steps_on_copy_text_lines_like_sql(
    steps: list[dict[str, Any]], pg: Any, pg2: Any
) -> None:
    """PostgreSQL → PostgreSQL with steps kept out of the SQL: same rows as full push-down."""
    rows = data.orders(300)
    # Values COPY text escapes: a tab, a backslash, a newline.
    rows[0] = (rows[0][0], *rows[0][1:2], "tab\there", "back\\slash\nnew", *rows[0][4:])
    data.load_pg(pg, rows=rows)
    pushed = copy_task(
        "src", "dst", {"table": "orders"}, {"table": "pushed"}, transformations=steps
    )
    kept = copy_task("src", "dst", {"table": "orders"}, {"table": "kept"}, transformations=steps)
    run_copy(FakeContext(pushed), pg, pg2)
    ctx = FakeContext(kept)
    result = run_copy(ctx, pg, pg2, pushdown=0)
    assert result["passthrough"]
    cols = ", ".join(c for c in ("id", "account_id", "name", "email") if _has(pg2, "kept", c))
    assert checksum(pg2.query(f"SELECT {cols} FROM kept")[1]) == checksum(
        pg2.query(f"SELECT {cols} FROM pushed")[1]
    )


def _has(db: Any, table: str, column: str) -> bool:
    found = db.query(
        "SELECT 1 FROM information_schema.columns WHERE table_name = %(t)s AND column_name = %(c)s",
        {"t": table, "c": column},
    )[1]
    return bool(found)


def test_it_filters_copy_text_lines_like_sql(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    steps = [
        {
            "name": "f",
            "function": "filter",
            "params": {
                "where": [
                    ["amount", ">=", {"param": "floor"}],
                    ["id", "not_in", [3, 4]],
                    ["name", "like", "name 00%"],
                    ["active", "=", True],
                    ["email", "!=", "user5@example.com"],
                ]
            },
        },
        {"name": "s", "function": "select", "params": {"columns": ["id", "amount"]}},
    ]
    pushed = copy_task(
        "src", "dst", {"table": "orders"}, {"table": "pushed"}, transformations=steps
    )
    kept = copy_task("src", "dst", {"table": "orders"}, {"table": "kept"}, transformations=steps)
    run_copy(FakeContext(pushed, params={"floor": 100.5}), pg, pg2)
    ctx = FakeContext(kept, params={"floor": 100.5})
    assert run_copy(ctx, pg, pg2, pushdown=False)["passthrough"]
    got = pg2.query("SELECT id, amount FROM kept")[1]
    assert len(got) > 10
    assert checksum(got) == checksum(pg2.query("SELECT id, amount FROM pushed")[1])
