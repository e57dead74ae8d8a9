"""The copy task's check at save: pipelines.tasktypes.copy.

Source, destination, incremental, partition, and names that cannot be quoted.
Each rejection test asserts the exact path and message, since the API
returns them as-is and the editor places them by path; none needs the
database.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.definition import (
    load,
)
from tests.pipelines.definition_examples import (
    copy_task,
    example,
    pipeline,
    problems,
)

# ---------------------------------------------------------------------------
# copy: source, destination, incremental, partition
# ---------------------------------------------------------------------------


def test_it_rejects_a_missing_source() -> None:
    data = example()
    del data["tasks"][0]["source"]
    assert problems(data) == ["tasks[0].source: missing required key 'source'"]


def test_it_rejects_unknown_source_keys() -> None:
    data = example()
    data["tasks"][0]["source"]["schema"] = "public"
    assert problems(data) == [
        "tasks[0].source.schema: unknown key 'schema'"
        " (expected one of: connection, keys, paginate, params, path, query, records, table)"
    ]


def test_it_rejects_a_source_with_table_and_query() -> None:
    data = example()
    data["tasks"][0]["source"]["query"] = "SELECT * FROM orders"
    assert problems(data) == ["tasks[0].source: give either table or query, not both"]


def test_it_rejects_a_source_with_neither_table_nor_query() -> None:
    data = example()
    del data["tasks"][0]["source"]["table"]
    assert problems(data) == ["tasks[0].source: needs a table or a query"]


def test_it_accepts_a_query_source() -> None:
    source = {"connection": "src", "query": "SELECT * FROM t WHERE d = %(logical_date)s"}
    assert load(pipeline(copy_task(source=source)))["tasks"][0]["source"] == source


def test_it_rejects_a_bad_connection_name() -> None:
    data = example()
    data["tasks"][0]["source"]["connection"] = "shop pg"
    assert problems(data) == [
        "tasks[0].source.connection: invalid name 'shop pg': use 1 to 100 letters, digits, "
        "'_' or '-', starting with a letter or '_'"
    ]


def test_it_rejects_unknown_destination_keys() -> None:
    data = example()
    data["tasks"][0]["destination"]["truncate"] = True
    assert problems(data) == [
        "tasks[0].destination.truncate: unknown key 'truncate' "
        "(expected one of: connection, keys, mode, schema, table)"
    ]


def test_it_rejects_an_unknown_destination_mode() -> None:
    data = example()
    data["tasks"][0]["destination"]["mode"] = "merge"
    assert problems(data) == [
        "tasks[0].destination.mode: unknown mode 'merge' (expected one of: append, replace, upsert)"
    ]


def test_it_rejects_upsert_without_keys() -> None:
    data = example()
    del data["tasks"][0]["destination"]["keys"]
    assert problems(data) == [
        "tasks[0].destination.keys: mode 'upsert' needs keys: the columns that identify a row"
    ]
    data["tasks"][0]["destination"]["keys"] = []
    assert problems(data) == [
        "tasks[0].destination.keys: mode 'upsert' needs keys: the columns that identify a row"
    ]


def test_it_rejects_an_unknown_incremental_key() -> None:
    data = example()
    data["tasks"][0]["incremental"] = {"column": "created_at", "start": "2024-01-01"}
    assert problems(data) == [
        "tasks[0].incremental.start: unknown key 'start' (expected one of: column, lookback)"
    ]


def test_it_rejects_incremental_with_replace() -> None:
    task = copy_task(incremental={"column": "id"})
    task["destination"]["mode"] = "replace"
    assert problems(pipeline(task)) == [
        "tasks[0].destination.mode: an incremental copy cannot replace the destination"
        " (it would drop the rows of earlier runs): use mode upsert, or append with keys"
    ]


def test_it_rejects_incremental_append_without_keys() -> None:
    task = copy_task(incremental={"column": "updated_at"})
    assert problems(pipeline(task)) == [
        "tasks[0].destination.keys: an incremental copy with mode append needs destination"
        " keys: rows read again at the watermark are skipped when their keys are already in"
        " the destination"
    ]


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_it_accepts_incremental_with_keys_and_a_lookback(mode: str) -> None:
    task = copy_task(incremental={"column": "updated_at", "lookback": 300})
    task["destination"].update(mode=mode, keys=["id"])
    normalized = load(pipeline(task))["tasks"][0]  # load raises on any problem
    assert normalized["incremental"] == {"column": "updated_at", "lookback": 300}
    task["incremental"] = {"column": "seq", "lookback": 0.5}
    assert load(pipeline(task))["tasks"][0]["incremental"]["lookback"] == 0.5
    del task["incremental"]["lookback"]
    assert load(pipeline(task))["tasks"][0]["incremental"] == {"column": "seq", "lookback": 0}


@pytest.mark.parametrize(
    ("lookback", "message"),
    [
        (-1, "must be between 0 and 316224000"),
        (316224001, "must be between 0 and 316224000"),
        ("60", "expected a number of seconds or units, got string"),
        (True, "expected a number of seconds or units, got boolean"),
        (None, "expected a number of seconds or units, got null"),
    ],
)
def test_it_rejects_a_bad_lookback(lookback: Any, message: str) -> None:
    task = copy_task(incremental={"column": "updated_at", "lookback": lookback})
    task["destination"].update(mode="upsert", keys=["id"])
    assert problems(pipeline(task)) == [f"tasks[0].incremental.lookback: {message}"]


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (0, "must be between 1 and 256"),
        (257, "must be between 1 and 256"),
        ("8", "expected an integer, got string"),
        (True, "expected an integer, got boolean"),
    ],
)
def test_it_rejects_partition_chunks_out_of_range(chunks: Any, message: str) -> None:
    data = example()
    data["tasks"][0]["partition"]["chunks"] = chunks
    assert problems(data) == [f"tasks[0].partition.chunks: {message}"]


def test_it_rejects_a_partition_without_chunks() -> None:
    data = example()
    del data["tasks"][0]["partition"]["chunks"]
    assert problems(data) == ["tasks[0].partition.chunks: missing required key 'chunks'"]


def test_it_accepts_null_incremental_and_partition() -> None:
    task = load(pipeline(copy_task(incremental=None, partition=None)))["tasks"][0]
    assert task["incremental"] is None
    assert task["partition"] is None


def test_it_rejects_a_bad_batch_size() -> None:
    assert problems(pipeline(copy_task(batch_size=0))) == [
        "tasks[0].batch_size: must be between 1 and 1000000"
    ]
    assert load(pipeline(copy_task(batch_size=500)))["tasks"][0]["batch_size"] == 500


# ---------------------------------------------------------------------------
# Identifier safety
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("", "must not be empty"),
        ("a" * 64, "is longer than 63 bytes"),
        ("é" * 32, "is longer than 63 bytes"),
        ("a\x00b", "must not contain NUL"),
        ('a"b', "must not contain a double quote"),
        ("a`b", "must not contain a backtick"),
        ("a%b", "must not contain %"),
        ("a\nb", "must not contain control characters or line breaks"),
        ("a\x7fb", "must not contain control characters or line breaks"),
        ("a\u2028b", "must not contain control characters or line breaks"),
    ],
)
def test_it_rejects_columns_that_cannot_be_quoted(column: str, message: str) -> None:
    task = copy_task(
        destination={"connection": "d", "table": "t", "mode": "upsert", "keys": [column]}
    )
    found = problems(pipeline(task))
    assert len(found) == 1
    assert found[0].startswith("tasks[0].destination.keys[0]: invalid column name ")
    assert found[0].endswith(f": {message}")


def test_it_accepts_columns_with_spaces_and_unicode() -> None:
    task = copy_task(
        destination={
            "connection": "d",
            "table": "t",
            "mode": "upsert",
            "keys": ["order id", "é" * 31],
        }
    )
    assert load(pipeline(task))["tasks"][0]["destination"]["keys"] == ["order id", "é" * 31]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("", "must not be empty"),
        ("../etc/passwd", "must not contain '/', '\\' or '..'"),
        ("dir/orders.csv", "must not contain '/', '\\' or '..'"),
        ("dir\\orders.csv", "must not contain '/', '\\' or '..'"),
        ("a..b", "must not contain '/', '\\' or '..'"),
        ("a.b.c", "expected name or schema.name"),
        (".orders", "schema part must not be empty"),
        ("staging.", "name part must not be empty"),
        ('staging."x', "name part must not contain a double quote"),
        ("s" * 64 + ".t", "schema part is longer than 63 bytes"),
    ],
)
def test_it_rejects_unsafe_table_names(table: str, message: str) -> None:
    data = example()
    data["tasks"][2]["table"] = table
    assert problems(data) == [f"tasks[2].table: invalid table name '{table}': {message}"]


def test_it_accepts_file_names_and_schema_names_as_tables() -> None:
    for table in ["orders.csv", "orders.jsonl", "staging.orders", "my orders"]:
        assert load(pipeline(copy_task(source={"connection": "f", "table": table})))
