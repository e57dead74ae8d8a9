"""The sql and check tasks' checks at save: pipelines.tasktypes.sql and .check.

Each rejection test asserts the exact path and message, since the API
returns them as-is and the editor places them by path; none needs the
database.
"""

from __future__ import annotations

import copy
import json

from pipelines.definition import (
    load,
    validate,
)
from tests.pipelines.definition_examples import (
    example,
    pipeline,
    problems,
)

# ---------------------------------------------------------------------------
# sql and check tasks
# ---------------------------------------------------------------------------


def test_it_accepts_a_list_of_statements() -> None:
    task = {
        "name": "s",
        "type": "sql",
        "connection": "c",
        "sql": ["DELETE FROM t", "INSERT INTO t SELECT 1"],
    }
    assert load(pipeline(task))["tasks"][0]["sql"] == ["DELETE FROM t", "INSERT INTO t SELECT 1"]


def test_it_rejects_bad_sql_values() -> None:
    base = {"name": "s", "type": "sql", "connection": "c"}
    assert problems(pipeline({**base, "sql": 1})) == [
        "tasks[0].sql: expected a string or a list of strings, got integer"
    ]
    assert problems(pipeline({**base, "sql": ["SELECT 1", " "]})) == [
        "tasks[0].sql[1]: must not be empty"
    ]
    assert problems(pipeline({**base, "sql": []})) == ["tasks[0].sql: must not be empty"]


def test_it_rejects_a_missing_sql_connection() -> None:
    data = example()
    del data["tasks"][1]["connection"]
    assert problems(data) == ["tasks[1].connection: missing required key 'connection'"]


def test_it_rejects_unknown_placeholders_in_sql() -> None:
    data = example()
    data["tasks"][1]["sql"] = "SELECT %(min_amount)s, %(logical_date)s, '100%%', %(day)s"
    assert problems(data) == ["tasks[1].sql: unknown parameter 'day' in %(day)s"]


def test_it_rejects_an_unknown_check() -> None:
    data = example()
    data["tasks"][2]["checks"].append({"freshness": {"column": "created_at"}})
    assert problems(data) == [
        "tasks[2].checks[3].freshness: unknown key 'freshness' "
        "(expected one of: not_null, row_count, sql, unique)"
    ]


def test_it_rejects_two_checks_in_one_item() -> None:
    data = example()
    data["tasks"][2]["checks"] = [{"not_null": ["email"], "unique": ["id"]}]
    assert problems(data) == [
        "tasks[2].checks[0]: expected exactly one of: not_null, row_count, sql, unique"
    ]


def test_it_rejects_bad_row_count_bounds() -> None:
    data = example()
    data["tasks"][2]["checks"] = [
        {"row_count": {"min": 5, "max": 1}},
        {"row_count": {}},
        {"row_count": {"min": -1}},
        {"row_count": {"least": 1}},
    ]
    assert problems(data) == [
        "tasks[2].checks[0].row_count.max: must not be less than min",
        "tasks[2].checks[1].row_count: needs min, max or both",
        "tasks[2].checks[2].row_count.min: must be between 0 and 9223372036854775807",
        "tasks[2].checks[3].row_count.least: unknown key 'least' (expected one of: max, min)",
        "tasks[2].checks[3].row_count: needs min, max or both",
    ]


def test_it_rejects_bad_column_checks() -> None:
    data = example()
    data["tasks"][2]["checks"] = [{"not_null": "email"}, {"unique": []}]
    assert problems(data) == [
        "tasks[2].checks[0].not_null: expected a list, got string",
        "tasks[2].checks[1].unique: must not be empty",
    ]


def test_it_accepts_a_sql_check() -> None:
    data = example()
    data["tasks"][2]["checks"] = [{"sql": "SELECT * FROM staging.orders WHERE total < 0"}]
    assert load(data)["tasks"][2]["checks"] == data["tasks"][2]["checks"]


def test_it_rejects_an_empty_check_list() -> None:
    data = example()
    data["tasks"][2]["checks"] = []
    assert problems(data) == ["tasks[2].checks: must not be empty"]


def test_it_leaves_the_input_untouched() -> None:
    data = example()
    before = copy.deepcopy(data)
    validate(data)
    assert data == before
    assert json.loads(json.dumps(load(data))) == load(data)
