"""A copy's transformations checked at save: connectors.transform (each function's check).

Each rejection test asserts the exact path and message, since the API
returns them as-is and the editor places them by path; none needs the
database.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.definition import (
    load,
    validate,
)
from tests.pipelines.definition_examples import (
    copy_task,
    example,
    first_steps_problems,
    problems,
    steps,
)

# ---------------------------------------------------------------------------
# Transformations
# ---------------------------------------------------------------------------


def test_it_rejects_an_unknown_transformation_function() -> None:
    data = example()
    data["tasks"][0]["transformations"][0]["function"] = "fliter"
    assert problems(data) == [
        "tasks[0].transformations[0].function: unknown function 'fliter' (did you mean 'filter'?)"
    ]


def test_it_rejects_unknown_transformation_keys() -> None:
    data = example()
    data["tasks"][0]["transformations"][0]["when"] = "always"
    assert problems(data) == [
        "tasks[0].transformations[0].when: unknown key 'when' "
        "(expected one of: function, name, params)"
    ]


def test_it_rejects_unknown_transformation_params() -> None:
    data = example()
    data["tasks"][0]["transformations"][0]["params"]["column"] = "email"
    assert problems(data) == [
        "tasks[0].transformations[0].params.column: unknown key 'column' (did you mean 'columns'?)"
    ]


def test_it_rejects_transformations_without_params() -> None:
    assert first_steps_problems({"function": "select"}) == [
        "tasks[0].transformations[0].params: missing required key 'params'"
    ]


def test_it_rejects_a_filter_without_columns_or_where() -> None:
    assert first_steps_problems({"function": "filter", "params": {}}) == [
        "tasks[0].transformations[0].params: needs columns, where or both"
    ]


def test_it_rejects_an_unknown_where_operator() -> None:
    data = example()
    data["tasks"][0]["transformations"][1]["params"]["where"][0][1] = "=="
    assert problems(data) == [
        "tasks[0].transformations[1].params.where[0][1]: unknown operator '==' (did you mean '='?)"
    ]


def test_it_accepts_every_where_operator() -> None:
    where = [
        ["a", "=", 1],
        ["a", "!=", "x"],
        ["a", "<", 1.5],
        ["a", "<=", {"param": "logical_date"}],
        ["a", ">", 0],
        ["a", ">=", True],
        ["a", "in", [1, 2, {"param": "n"}]],
        ["a", "not_in", {"param": "n"}],
        ["a", "is_null"],
        ["a", "not_null"],
        ["a", "like", "x%"],
    ]
    defn = load(
        {
            "name": "p",
            "parameters": {"n": [1]},
            "tasks": [
                copy_task(transformations=[{"function": "filter", "params": {"where": where}}])
            ],
        }
    )
    assert defn["tasks"][0]["transformations"][0]["params"]["where"] == where


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        (["email", "is_null", None], "[0][2]: operator 'is_null' takes no value"),
        (["email", "not_null", 1], "[0][2]: operator 'not_null' takes no value"),
        (
            ["id", "in", 1],
            "[0][2]: operator 'in' takes a non-empty list of values or a {param: name}",
        ),
        (
            ["id", "not_in", []],
            "[0][2]: operator 'not_in' takes a non-empty list of values or a {param: name}",
        ),
        (["id", "="], "[0]: operator '=' needs a value"),
        (["id", "=", None], "[0][2]: cannot compare with null: use is_null or not_null"),
        (["id", "=", [1]], "[0][2]: operator '=' takes a single value, got list"),
        (["id", "like", 5], "[0][2]: operator 'like' takes a string pattern, got integer"),
        (["id", "in", [1, None]], "[0][2][1]: cannot compare with null: use is_null or not_null"),
        (["id"], "[0]: expected [column, operator, value] or [column, is_null|not_null]"),
        ("id = 1", "[0]: expected [column, operator, value] or [column, is_null|not_null]"),
        ([1, "=", 1], "[0][0]: expected a string, got integer"),
    ],
)
def test_it_rejects_malformed_where_conditions(condition: Any, problem: str) -> None:
    found = first_steps_problems({"function": "filter", "params": {"where": [condition]}})
    assert found == [f"tasks[0].transformations[0].params.where{problem}"]


def test_it_rejects_an_unknown_parameter_reference() -> None:
    data = example()
    data["tasks"][0]["transformations"][1]["params"]["where"][0][2] = {"param": "max_amount"}
    assert problems(data) == [
        "tasks[0].transformations[1].params.where[0][2].param: unknown parameter 'max_amount'"
    ]


def test_it_rejects_a_malformed_parameter_reference() -> None:
    data = example()
    data["tasks"][0]["transformations"][1]["params"]["where"][0][2] = {"name": "min_amount"}
    assert problems(data) == [
        "tasks[0].transformations[1].params.where[0][2].name: unknown key 'name' "
        "(expected one of: param)",
        "tasks[0].transformations[1].params.where[0][2].param: missing required key 'param'",
    ]


def test_it_accepts_builtin_parameter_references() -> None:
    for name in ["execution_id", "logical_date", "data_interval_start", "data_interval_end"]:
        assert load(
            steps({"function": "filter", "params": {"where": [["d", ">=", {"param": name}]]}})
        )


def test_it_rejects_an_unknown_mask_method() -> None:
    assert first_steps_problems(
        {"function": "mask", "params": {"columns": ["email"], "method": "md5"}}
    ) == [
        "tasks[0].transformations[0].params.method: unknown method 'md5' "
        "(expected one of: redact, sha256)"
    ]


def test_it_rejects_a_mask_without_method() -> None:
    assert first_steps_problems({"function": "mask", "params": {"columns": ["email"]}}) == [
        "tasks[0].transformations[0].params.method: missing required key 'method'"
    ]


def test_it_rejects_an_unknown_cast_type() -> None:
    assert first_steps_problems({"function": "cast", "params": {"columns": {"id": "varchar"}}}) == [
        "tasks[0].transformations[0].params.columns.id: unknown type 'varchar' "
        "(expected one of: bigint, boolean, date, integer, json, numeric, text, timestamp)"
    ]


def test_it_rejects_an_unknown_aggregate_function() -> None:
    step = {
        "function": "aggregate",
        "params": {"group_by": ["day"], "metrics": {"n": ["median", "x"]}},
    }
    assert first_steps_problems(step) == [
        "tasks[0].transformations[0].params.metrics.n[0]: unknown aggregate function 'median' "
        "(did you mean 'min'?)"
    ]


def test_it_rejects_a_malformed_metric() -> None:
    step = {"function": "aggregate", "params": {"metrics": {"n": "count"}}}
    assert first_steps_problems(step) == [
        "tasks[0].transformations[0].params.metrics.n: expected [function, column]"
    ]


def test_it_rejects_a_metric_named_like_a_group_by_column() -> None:
    step = {
        "function": "aggregate",
        "params": {"group_by": ["day"], "metrics": {"day": ["max", "x"]}},
    }
    assert first_steps_problems(step) == [
        "tasks[0].transformations[0].params.metrics.day: column 'day' is also in group_by"
    ]


def test_it_rejects_star_outside_count() -> None:
    step = {"function": "aggregate", "params": {"metrics": {"n": ["sum", "*"]}}}
    assert first_steps_problems(step) == [
        "tasks[0].transformations[0].params.metrics.n[1]: '*' only works with count"
    ]


def test_it_rejects_dedupe_without_keys() -> None:
    assert first_steps_problems({"function": "dedupe", "params": {"keys": []}}) == [
        "tasks[0].transformations[0].params.keys: must not be empty"
    ]


def test_it_rejects_a_column_listed_twice() -> None:
    assert first_steps_problems({"function": "select", "params": {"columns": ["a", "a"]}}) == [
        "tasks[0].transformations[0].params.columns[1]: column 'a' is listed twice"
    ]


def test_it_rejects_an_empty_rename_mapping() -> None:
    assert first_steps_problems({"function": "rename", "params": {"mapping": {}}}) == [
        "tasks[0].transformations[0].params.mapping: must not be empty"
    ]


def test_it_rejects_a_rename_that_duplicates_a_column() -> None:
    select = {"function": "select", "params": {"columns": ["a", "b"]}}
    rename = {"function": "rename", "params": {"mapping": {"a": "b"}}}
    assert first_steps_problems(select, rename) == [
        "tasks[0].transformations[1].params.mapping.a: column 'b' would appear twice"
    ]


def test_it_rejects_two_renames_to_the_same_name() -> None:
    rename = {"function": "rename", "params": {"mapping": {"a": "x", "b": "x"}}}
    assert first_steps_problems(rename) == [
        "tasks[0].transformations[0].params.mapping.a: column 'x' would appear twice"
    ]


# ---------------------------------------------------------------------------
# Column tracking
# ---------------------------------------------------------------------------


def test_it_rejects_a_column_renamed_away_after_select() -> None:
    data = example()
    data["tasks"][0]["transformations"].append(
        {"name": "mask", "function": "mask", "params": {"columns": ["amount"], "method": "redact"}}
    )
    assert problems(data) == [
        "tasks[0].transformations[4].params.columns[0]: unknown column 'amount' "
        "(columns here: id, email, total, created_at)"
    ]


def test_it_rejects_a_rename_of_a_column_the_select_dropped() -> None:
    data = example()
    data["tasks"][0]["transformations"][2]["params"]["columns"] = ["id", "email"]
    del data["tasks"][0]["incremental"]
    assert problems(data) == [
        "tasks[0].transformations[3].params.mapping.amount: unknown column 'amount' "
        "(columns here: id, email)"
    ]


def test_it_rejects_destination_keys_missing_after_transformations() -> None:
    data = example()
    data["tasks"][0]["destination"]["keys"] = ["amount"]
    assert problems(data) == [
        "tasks[0].destination.keys[0]: unknown column 'amount' "
        "(columns here: id, email, total, created_at)"
    ]


def test_it_checks_the_incremental_column_as_a_source_column() -> None:
    # The copy engine takes the watermark in the source query, before the
    # transformations, so a select may drop the column and a rename does not
    # rename it there.
    data = example()
    data["tasks"][0]["transformations"][2]["params"]["columns"] = ["id", "email", "amount"]
    data["tasks"][0]["transformations"][3]["params"]["mapping"] = {"amount": "total"}
    assert validate(data)[1] == []
    data["tasks"][0]["incremental"]["column"] = 'created"at'
    assert problems(data) == [
        "tasks[0].incremental.column: invalid column name 'created\"at': "
        "must not contain a double quote"
    ]


def test_it_does_not_know_the_columns_of_a_table_before_a_select() -> None:
    data = example()
    data["tasks"][0]["transformations"][0]["params"]["columns"] = ["anything"]
    assert validate(data)[1] == []


def test_it_remembers_a_rename_before_any_select() -> None:
    rename = {"function": "rename", "params": {"mapping": {"amount": "total"}}}
    cast = {"function": "cast", "params": {"columns": {"amount": "numeric", "total": "numeric"}}}
    assert first_steps_problems(rename, cast) == [
        "tasks[0].transformations[1].params.columns.amount: unknown column 'amount' "
        "(renamed to 'total' earlier)"
    ]


def test_it_knows_the_columns_after_an_aggregate() -> None:
    aggregate = {
        "function": "aggregate",
        "params": {
            "group_by": ["day"],
            "metrics": {"n": ["count", "*"], "total": ["sum", "amount"]},
        },
    }
    select = {"function": "select", "params": {"columns": ["day", "amount"]}}
    assert first_steps_problems(aggregate, select) == [
        "tasks[0].transformations[1].params.columns[1]: unknown column 'amount' "
        "(columns here: day, n, total)"
    ]


def test_it_tracks_columns_through_a_rename_of_known_columns() -> None:
    select = {"function": "select", "params": {"columns": ["a", "b"]}}
    rename = {"function": "rename", "params": {"mapping": {"a": "x"}}}
    dedupe = {"function": "dedupe", "params": {"keys": ["x", "b"]}}
    assert load(steps(select, rename, dedupe))


def test_it_reports_a_bad_select_only_once() -> None:
    # After a broken select the column list is unknown, not wrong everywhere.
    select = {"function": "select", "params": {"columns": ["a", 'b"']}}
    dedupe = {"function": "dedupe", "params": {"keys": ["c"]}}
    assert first_steps_problems(select, dedupe) == [
        "tasks[0].transformations[0].params.columns[1]: invalid column name 'b\"': "
        "must not contain a double quote"
    ]
