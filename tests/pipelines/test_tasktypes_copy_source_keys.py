"""A copy source's ``keys`` (a query's columns that identify a row), checked at save.

pipelines.tasktypes.copy.

Whether the query returns those columns, unique and never NULL, is checked
when the copy runs (tests/pipelines/test_copy_resume_sources.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.definition import load
from pipelines.tasktypes.copy import CopyTask
from tests.pipelines.definition_examples import copy_task, pipeline, problems

QUERY = "SELECT id, name FROM orders"


def _problems(source: dict[str, Any]) -> list[str]:
    return problems(pipeline(copy_task(source=source)))


def test_it_accepts_keys_on_a_query_source() -> None:
    source = {"connection": "src", "query": QUERY, "keys": ["account_id", "id"]}
    assert load(pipeline(copy_task(source=source)))["tasks"][0]["source"] == source


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "must list at least one column of the query's rows (those that identify a row)"),
        ("id", "expected a list, got string"),
        (["id", "id"], "column 'id' is listed twice"),
        ([3], "expected a string, got integer"),
        # A key is an identifier the copy quotes into its SQL (SPEC §10): one
        # that could close the quotes is refused at save.
        (['id"; DROP TABLE orders; --'], "must not contain a double quote"),
    ],
)
def test_it_rejects_bad_keys(keys: Any, message: str) -> None:
    found = _problems({"connection": "src", "query": QUERY, "keys": keys})
    assert len(found) == 1 and found[0].startswith("tasks[0].source.keys")
    assert found[0].endswith(message), found


def test_it_rejects_keys_on_a_table_source() -> None:
    assert _problems({"connection": "src", "table": "orders", "keys": ["id"]}) == [
        "tasks[0].source.keys: is for a query source: a table is read in order of its primary key"
    ]


def test_the_editor_schema_lists_keys_as_a_nonempty_list_of_columns() -> None:
    schema = CopyTask.keys["source"].schema
    assert schema["properties"]["keys"] == {
        "type": "array",
        "items": {"type": "string"},
        "uniqueItems": True,
        "minItems": 1,
    }
