"""The pipeline definition format (SPEC §2): parsing, validation, normalization.

pipelines/definition imports no Django, so none of these tests needs the
database. Each rejection test asserts the exact path and message, since the
API returns them as-is and the editor places them by path.
"""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.transform import FUNCTIONS
from core.names import NAME_RE
from pipelines.definition import (
    DefinitionError,
    Problem,
    connection_refs,
    dump_yaml,
    load,
    load_text,
    parse_text,
    validate,
)
from pipelines.tasktypes.registry import TASK_TYPES

# SPEC §2, verbatim (comments included: the parser must cope with them).
EXAMPLE_YAML = """\
name: orders_daily            # unique, [a-z0-9_-], max 100
description: Clean orders into the warehouse
schedule: "0 2 * * *"         # cron, optional; timezone optional (default UTC)
catchup: false                # run missed intervals after downtime?
enabled: true
tags: [sales, nightly]
max_active_runs: 1
parameters: {min_amount: 100} # defaults; a run may override
on_failure: {webhook: "https://hooks.example.com/x"}   # optional
tasks:
  - name: copy_orders
    type: copy
    source: {connection: shop_pg, table: public.orders}     # or query: "SELECT ..."
    transformations:
      - {name: filter_nulls, function: filter, params: {columns: [email]}}
      - {name: big_only, function: filter, params: {where: [[amount, ">=", {param: min_amount}]]}}
      - {name: pick, function: select, params: {columns: [id, email, amount, created_at]}}
      - {name: rename, function: rename, params: {mapping: {amount: total}}}
    destination: {connection: dwh_pg, table: staging.orders, mode: upsert, keys: [id]}
    incremental: {column: created_at}        # optional: only rows past the last watermark
    partition: {column: id, chunks: 8}       # optional: parallel chunks across workers
    retries: 3
    retry_delay: 10          # seconds, doubled each attempt, capped
    timeout: 3600            # seconds
  - name: daily_totals
    type: sql
    connection: dwh_pg
    sql: "INSERT INTO marts.daily_totals SELECT ... WHERE day = %(logical_date)s"
    depends_on: [copy_orders]
  - name: orders_ok
    type: check
    connection: dwh_pg
    table: staging.orders
    checks: [{row_count: {min: 1}}, {not_null: [email]}, {unique: [id]}]
    depends_on: [daily_totals]
"""

# The same definition as an API client would send it.
EXAMPLE_JSON = """\
{
  "name": "orders_daily",
  "description": "Clean orders into the warehouse",
  "schedule": "0 2 * * *",
  "catchup": false,
  "enabled": true,
  "tags": ["sales", "nightly"],
  "max_active_runs": 1,
  "parameters": {"min_amount": 100},
  "on_failure": {"webhook": "https://hooks.example.com/x"},
  "tasks": [
    {
      "name": "copy_orders",
      "type": "copy",
      "source": {"connection": "shop_pg", "table": "public.orders"},
      "transformations": [
        {"name": "filter_nulls", "function": "filter", "params": {"columns": ["email"]}},
        {"name": "big_only", "function": "filter",
         "params": {"where": [["amount", ">=", {"param": "min_amount"}]]}},
        {"name": "pick", "function": "select",
         "params": {"columns": ["id", "email", "amount", "created_at"]}},
        {"name": "rename", "function": "rename", "params": {"mapping": {"amount": "total"}}}
      ],
      "destination": {"connection": "dwh_pg", "table": "staging.orders",
                      "mode": "upsert", "keys": ["id"]},
      "incremental": {"column": "created_at"},
      "partition": {"column": "id", "chunks": 8},
      "retries": 3,
      "retry_delay": 10,
      "timeout": 3600
    },
    {
      "name": "daily_totals",
      "type": "sql",
      "connection": "dwh_pg",
      "sql": "INSERT INTO marts.daily_totals SELECT ... WHERE day = %(logical_date)s",
      "depends_on": ["copy_orders"]
    },
    {
      "name": "orders_ok",
      "type": "check",
      "connection": "dwh_pg",
      "table": "staging.orders",
      "checks": [{"row_count": {"min": 1}}, {"not_null": ["email"]}, {"unique": ["id"]}],
      "depends_on": ["daily_totals"]
    }
  ]
}
"""


def example() -> dict[str, Any]:
    """A fresh, parsed (not yet validated) copy of the SPEC example."""
    data = parse_text(EXAMPLE_YAML)
    assert isinstance(data, dict)
    return data


def problems(data: Any) -> list[str]:
    """The problems of an invalid definition, as ``path: message`` strings."""
    normalized, found = validate(data)
    assert normalized is None
    assert found
    return [str(problem) for problem in found]


def copy_task(**changes: Any) -> dict[str, Any]:
    """A minimal valid copy task, with ``changes`` applied."""
    task: dict[str, Any] = {
        "name": "copy",
        "type": "copy",
        "source": {"connection": "src", "table": "orders"},
        "destination": {"connection": "dst", "table": "orders"},
    }
    task.update(changes)
    return task


def pipeline(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A minimal definition holding ``tasks`` (one copy task by default)."""
    return {"name": "p", "tasks": list(tasks) or [copy_task()], **fields}


def steps(*transformations: dict[str, Any]) -> dict[str, Any]:
    """A definition whose single copy task runs ``transformations``."""
    return pipeline(copy_task(transformations=list(transformations)))


def first_steps_problems(*transformations: dict[str, Any]) -> list[str]:
    return problems(steps(*transformations))


# ---------------------------------------------------------------------------
# The example, normalization and round trips
# ---------------------------------------------------------------------------


def test_it_accepts_the_spec_example_as_yaml() -> None:
    normalized, found = validate(example())
    assert found == []
    assert normalized is not None
    assert normalized["name"] == "orders_daily"
    assert [task["name"] for task in normalized["tasks"]] == [
        "copy_orders",
        "daily_totals",
        "orders_ok",
    ]


def test_it_accepts_the_spec_example_as_json_with_the_same_result() -> None:
    assert load_text(EXAMPLE_JSON) == load_text(EXAMPLE_YAML)
    assert load_text(EXAMPLE_JSON, "json") == load_text(EXAMPLE_YAML, "yaml")


def test_it_fills_every_default() -> None:
    defn = load(
        pipeline(
            copy_task(),
            {"name": "s", "type": "sql", "connection": "c", "sql": "SELECT 1"},
            {
                "name": "k",
                "type": "check",
                "connection": "c",
                "table": "t",
                "checks": [{"unique": ["id"]}],
            },
        )
    )
    assert defn == {
        "name": "p",
        "tasks": [
            {
                "name": "copy",
                "type": "copy",
                "source": {"connection": "src", "table": "orders"},
                "destination": {
                    "connection": "dst",
                    "table": "orders",
                    "mode": "append",
                    "keys": [],
                },
                "transformations": [],
                "incremental": None,
                "partition": None,
                "batch_size": 50000,
                "depends_on": [],
                "retries": 0,
                "retry_delay": 10,
                "timeout": 3600,
            },
            {
                "name": "s",
                "type": "sql",
                "connection": "c",
                "sql": "SELECT 1",
                "depends_on": [],
                "retries": 0,
                "retry_delay": 10,
                "timeout": 3600,
            },
            {
                "name": "k",
                "type": "check",
                "connection": "c",
                "table": "t",
                "checks": [{"unique": ["id"]}],
                "depends_on": [],
                "retries": 0,
                "retry_delay": 10,
                "timeout": 3600,
            },
        ],
        "description": "",
        "schedule": None,
        "timezone": "UTC",
        "catchup": False,
        "enabled": True,
        "tags": [],
        "max_active_runs": 16,
        "parameters": {},
        "on_failure": None,
    }


def test_it_keeps_the_users_key_order_then_defaults() -> None:
    defn = load({"tasks": [copy_task()], "enabled": False, "name": "p"})
    assert list(defn)[:3] == ["tasks", "enabled", "name"]
    assert list(defn)[3:] == [
        "description",
        "schedule",
        "timezone",
        "catchup",
        "tags",
        "max_active_runs",
        "parameters",
        "on_failure",
    ]


def test_it_fills_transformation_names_and_aggregate_group_by() -> None:
    defn = load(steps({"function": "aggregate", "params": {"metrics": {"n": ["count", "*"]}}}))
    assert defn["tasks"][0]["transformations"] == [
        {
            "function": "aggregate",
            "params": {"metrics": {"n": ["count", "*"]}, "group_by": []},
            "name": "aggregate",
        }
    ]


def test_it_validates_a_normalized_definition_to_itself() -> None:
    defn = load_text(EXAMPLE_YAML)
    assert validate(defn) == (defn, [])


def test_it_does_not_share_structure_with_the_input() -> None:
    data = example()
    defn = load(data)
    defn["tasks"][0]["transformations"][0]["params"]["columns"].append("x")
    defn["parameters"]["min_amount"] = 1
    assert data["tasks"][0]["transformations"][0]["params"]["columns"] == ["email"]
    assert data["parameters"]["min_amount"] == 100


def test_it_round_trips_through_dump_yaml() -> None:
    defn = load_text(EXAMPLE_YAML)
    text = dump_yaml(defn)
    assert load_text(text) == defn
    assert dump_yaml(load_text(text)) == text


def test_it_dumps_readable_yaml() -> None:
    text = dump_yaml(load_text(EXAMPLE_YAML))
    assert text.startswith("name: orders_daily\n")
    assert "tags: [sales, nightly]\n" in text
    assert "where: [[amount, '>=', {param: min_amount}]]\n" in text


def test_it_dumps_multiline_sql_as_a_block_and_reads_it_back() -> None:
    sql = "INSERT INTO t\nSELECT 1\n  WHERE x = %(logical_date)s\n"
    defn = load(pipeline({"name": "s", "type": "sql", "connection": "c", "sql": sql}))
    text = dump_yaml(defn)
    assert "sql: |\n" in text
    assert load_text(text) == defn


def test_it_round_trips_tricky_strings() -> None:
    for text in [
        "yes",
        "on",
        "2024-01-01",
        "1_000",
        "null",
        "#x",
        "a: b",
        " lead",
        "x\ty",
        "é\u2028",
        "a\x85b",
        "\u2029\n",
        "two\nlines  \n",
        "SELECT 1;\r\nSELECT 2",
    ]:
        defn = load(pipeline(description=text, parameters={"p": text}))
        assert load_text(dump_yaml(defn)) == defn, text


def test_it_lists_connection_refs() -> None:
    assert connection_refs(load_text(EXAMPLE_YAML)) == [
        ("tasks[0].source.connection", "shop_pg"),
        ("tasks[0].destination.connection", "dwh_pg"),
        ("tasks[1].connection", "dwh_pg"),
        ("tasks[2].connection", "dwh_pg"),
    ]


def test_it_does_not_take_a_renamed_column_for_a_connection() -> None:
    defn = load(steps({"function": "rename", "params": {"mapping": {"connection": "conn"}}}))
    assert [path for path, _ in connection_refs(defn)] == [
        "tasks[0].source.connection",
        "tasks[0].destination.connection",
    ]


def test_it_registers_the_task_types_and_functions() -> None:
    assert {"copy", "sql", "check"} <= set(TASK_TYPES)
    assert set(FUNCTIONS) == {"filter", "select", "rename", "cast", "dedupe", "mask", "aggregate"}


def test_it_matches_names_with_name_re() -> None:
    assert NAME_RE.match("orders_daily")
    assert NAME_RE.match("_Orders-2")
    assert NAME_RE.match("a" * 100)
    for bad in ["", "9a", "-a", "a b", "a.b", "a" * 101, "a\n"]:
        assert not NAME_RE.match(bad), bad


def test_it_imports_no_django() -> None:
    code = (
        "import sys, pipelines.definition, pipelines.dag; "
        "sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


# ---------------------------------------------------------------------------
# Problem, DefinitionError, load
# ---------------------------------------------------------------------------


def test_it_formats_problems() -> None:
    assert str(Problem("tasks[0].name", "bad")) == "tasks[0].name: bad"
    assert str(Problem("", "bad")) == "bad"


def test_it_joins_problems_in_the_error() -> None:
    error = DefinitionError([Problem("name", "a"), Problem("", "b")])
    assert error.problems == [Problem("name", "a"), Problem("", "b")]
    assert str(error) == "name: a\nb"


def test_it_pickles_the_error() -> None:
    error = pickle.loads(pickle.dumps(DefinitionError([Problem("name", "a")])))
    assert error.problems == [Problem("name", "a")]


def test_it_raises_all_problems_from_load() -> None:
    data = example()
    data["tasks"][0]["retries"] = -1
    data["tasks"][1]["timeout"] = 0
    with pytest.raises(DefinitionError) as caught:
        load(data)
    assert [str(p) for p in caught.value.problems] == [
        "tasks[0].retries: must be between 0 and 100",
        "tasks[1].timeout: must be between 1 and 86400",
    ]


def test_it_caps_the_number_of_problems() -> None:
    found = problems(pipeline(tags=[1] * 500))
    assert len(found) == 101
    assert found[-1] == "… and 400 more problems"


# ---------------------------------------------------------------------------
# parse_text
# ---------------------------------------------------------------------------


def test_it_reports_yaml_syntax_errors_with_line_and_column() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_text("name: x\ntasks:\n  - name: a\n   bad: [\n")
    (problem,) = caught.value.problems
    assert problem.path == ""
    assert problem.message.startswith("invalid YAML at line 4, column ")


def test_it_reports_json_syntax_errors_with_line_and_column() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_text('{"name": "x",\n "tasks": [}', "json")
    assert str(caught.value) == "invalid JSON at line 2, column 12: Expecting value"


def test_it_prefers_the_json_error_for_json_looking_text() -> None:
    with pytest.raises(DefinitionError, match=r"^invalid JSON at line 1, column 2: "):
        parse_text("{'name': 'x',")


def test_it_parses_yaml_when_json_fails() -> None:
    assert parse_text("name: x\n") == {"name": "x"}
    assert parse_text('{"name": "x"}') == {"name": "x"}


def test_it_forces_a_format() -> None:
    assert parse_text("name: x", "yaml") == {"name": "x"}
    with pytest.raises(DefinitionError, match="invalid JSON"):
        parse_text("name: x", "json")
    with pytest.raises(DefinitionError, match="unknown format 'xml'"):
        parse_text("<a/>", "xml")


def test_it_rejects_duplicate_keys_in_yaml() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_text("name: a\ntasks: []\nname: b\n")
    assert str(caught.value) == "invalid YAML at line 3, column 1: duplicate key 'name'"


def test_it_allows_yaml_merge_keys() -> None:
    text = "defaults: &d {retries: 3, timeout: 60}\ntask: {<<: *d, retries: 5}\n"
    assert parse_text(text)["task"] == {"retries": 5, "timeout": 60}


def test_it_rejects_duplicate_keys_in_json() -> None:
    with pytest.raises(DefinitionError, match="^invalid JSON: duplicate key 'name'$"):
        parse_text('{"name": "a", "name": "b"}', "json")


def test_it_rejects_nan_in_json() -> None:
    with pytest.raises(DefinitionError, match="NaN is not allowed"):
        parse_text('{"x": NaN}', "json")


def test_it_keeps_yaml_dates_as_strings() -> None:
    assert parse_text("start: 2024-01-01\nat: 2024-01-01T10:00:00Z\n") == {
        "start": "2024-01-01",
        "at": "2024-01-01T10:00:00Z",
    }


def test_it_rejects_a_yaml_alias_bomb() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]")
    with pytest.raises(DefinitionError, match="^document too large: more than 100000 values$"):
        parse_text("\n".join(lines))


def test_it_rejects_recursive_yaml_anchors() -> None:
    with pytest.raises(
        DefinitionError, match="^document too large: nested more than 64 levels deep$"
    ):
        parse_text("a: &a [*a]")


def test_it_rejects_deep_nesting() -> None:
    with pytest.raises(DefinitionError):
        parse_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DefinitionError):
        parse_text("[" * 100_000 + "]" * 100_000, "json")


def test_it_rejects_huge_texts() -> None:
    with pytest.raises(DefinitionError, match="^document longer than 1048576 characters$"):
        parse_text("#" * (1 << 20) + "#")


def test_it_rejects_non_text() -> None:
    with pytest.raises(DefinitionError, match="expected text, got bytes"):
        parse_text(b"name: x")  # type: ignore[arg-type]


def test_it_reports_an_empty_document() -> None:
    assert problems(parse_text("")) == ["expected an object, got null"]


# ---------------------------------------------------------------------------
# Document-level rejections
# ---------------------------------------------------------------------------


def test_it_rejects_a_non_object_document() -> None:
    assert problems([1, 2]) == ["expected an object, got list"]
    assert problems("name: x") == ["expected an object, got string"]


def test_it_rejects_unknown_top_level_keys() -> None:
    data = example()
    data["schedul"] = "0 2 * * *"
    assert problems(data) == ["schedul: unknown key 'schedul' (did you mean 'schedule'?)"]


def test_it_rejects_non_string_keys() -> None:
    data = example()
    data[1] = "x"  # type: ignore[index]  # YAML allows non-string keys
    assert problems(data) == ["1: keys must be strings"]


def test_it_rejects_missing_required_keys() -> None:
    assert problems({"description": "x"}) == [
        "name: missing required key 'name'",
        "tasks: missing required key 'tasks'",
    ]


def test_it_rejects_a_pipeline_without_tasks() -> None:
    assert problems({"name": "p", "tasks": []}) == ["tasks: must not be empty"]


def test_it_rejects_bad_pipeline_names() -> None:
    data = example()
    data["name"] = "orders daily"
    assert problems(data) == [
        "name: invalid name 'orders daily': use 1 to 100 letters, digits, '_' or '-', "
        "starting with a letter or '_'"
    ]


def test_it_rejects_too_long_names() -> None:
    assert len(problems(pipeline(name="a" * 101))) == 1


def test_it_rejects_wrong_top_level_types() -> None:
    data = example()
    data["description"] = None
    data["catchup"] = "no"
    data["enabled"] = 1
    data["max_active_runs"] = 1.0
    assert problems(data) == [
        "description: expected a string, got null",
        "catchup: expected true or false, got string",
        "enabled: expected true or false, got integer",
        "max_active_runs: expected an integer, got number",
    ]


def test_it_rejects_max_active_runs_out_of_range() -> None:
    assert problems(pipeline(max_active_runs=0)) == ["max_active_runs: must be between 1 and 1000"]
    assert problems(pipeline(max_active_runs=1001)) == [
        "max_active_runs: must be between 1 and 1000"
    ]


def test_it_rejects_tags_that_are_not_a_list_of_strings() -> None:
    assert problems(pipeline(tags="sales")) == ["tags: expected a list, got string"]
    assert problems(pipeline(tags=["a", 2, "", "a"])) == [
        "tags[1]: expected a string, got integer",
        "tags[2]: must not be empty",
        "tags[3]: tag 'a' is listed twice",
    ]


# ---------------------------------------------------------------------------
# Schedule and timezone
# ---------------------------------------------------------------------------


def test_it_rejects_a_cron_with_the_wrong_number_of_fields() -> None:
    assert problems(pipeline(schedule="0 2 * * * *")) == [
        "schedule: invalid cron expression '0 2 * * * *': expected 5 fields "
        "(minute hour day-of-month month day-of-week) or "
        "@hourly/@daily/@weekly/@monthly/@yearly, got 6 fields"
    ]


def test_it_says_which_cron_field_is_wrong() -> None:
    assert problems(pipeline(schedule="0 25 * * *")) == [
        "schedule: invalid cron expression '0 25 * * *': hour field '25' is not valid "
        "(allowed: 0-23, *, lists, ranges, steps)"
    ]
    assert problems(pipeline(schedule="*/0 * * * *")) == [
        "schedule: invalid cron expression '*/0 * * * *': minute field '*/0' is not valid "
        "(allowed: 0-59, *, lists, ranges, steps)"
    ]


def test_it_rejects_a_cron_that_never_fires() -> None:
    assert problems(pipeline(schedule="0 0 30 2 *")) == [
        "schedule: invalid cron expression '0 0 30 2 *': never matches a date (e.g. February 30)"
    ]


def test_it_rejects_croniter_only_cron_extensions() -> None:
    assert problems(pipeline(schedule="R 2 * * *")) == [
        "schedule: invalid cron expression 'R 2 * * *': minute field 'R': "
        "H and R are not standard cron"
    ]


def test_it_rejects_a_non_string_schedule() -> None:
    assert problems(pipeline(schedule=5)) == ["schedule: expected a string, got integer"]


def test_it_accepts_cron_names_and_normalizes_them() -> None:
    assert load(pipeline(schedule="@daily"))["schedule"] == "0 0 * * *"
    assert load(pipeline(schedule="  0  2 * *   MON "))["schedule"] == "0 2 * * MON"
    assert load(pipeline(schedule=None))["schedule"] is None


def test_it_rejects_an_unknown_timezone() -> None:
    assert problems(pipeline(timezone="Mars/Olympus")) == [
        "timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as 'Europe/Paris')"
    ]


def test_it_accepts_iana_timezones() -> None:
    assert load(pipeline(timezone="Europe/Paris"))["timezone"] == "Europe/Paris"


# ---------------------------------------------------------------------------
# Parameters and on_failure
# ---------------------------------------------------------------------------


def test_it_rejects_parameters_that_are_not_an_object() -> None:
    assert problems(pipeline(parameters=[1])) == ["parameters: expected an object, got list"]


def test_it_rejects_non_json_parameter_values() -> None:
    assert problems(pipeline(parameters={"a": {"b": 1}, "c": [1, [2]], "d": float("nan")})) == [
        "parameters.a: expected a string, number, boolean, null or a list, got object",
        "parameters.c[1]: expected a string, number, boolean or null, got list",
        "parameters.d: expected a string, number, boolean, null or a list, got number",
    ]


def test_it_accepts_scalar_and_list_parameters() -> None:
    params = {"a": 1, "b": "x", "c": None, "d": True, "e": 1.5, "f": [1, "x", None]}
    assert load(pipeline(parameters=params))["parameters"] == params


def test_it_rejects_bad_parameter_names() -> None:
    assert problems(pipeline(parameters={"a b": 1})) == [
        "parameters.a b: invalid name 'a b': use 1 to 100 letters, digits, '_' or '-', "
        "starting with a letter or '_'"
    ]


def test_it_rejects_redefining_a_builtin_parameter() -> None:
    assert problems(pipeline(parameters={"logical_date": "2024-01-01"})) == [
        "parameters.logical_date: 'logical_date' is a built-in parameter and cannot be redefined"
    ]


def test_it_rejects_a_non_http_webhook() -> None:
    assert problems(pipeline(on_failure={"webhook": "ftp://hooks.example.com/x"})) == [
        "on_failure.webhook: expected an http(s) URL, got 'ftp://hooks.example.com/x'"
    ]
    assert problems(pipeline(on_failure={"webhook": "https://"})) == [
        "on_failure.webhook: expected an http(s) URL, got 'https://'"
    ]


def test_it_rejects_unknown_on_failure_keys() -> None:
    assert problems(pipeline(on_failure={"slack": "#data"})) == [
        "on_failure.slack: unknown key 'slack' (expected one of: email, webhook)",
        "on_failure: needs webhook, email or both (or null for no notification)",
    ]


def test_it_rejects_a_bad_email() -> None:
    assert problems(pipeline(on_failure={"email": ["ops@example.com", "nobody"]})) == [
        "on_failure.email[1]: invalid email address 'nobody'"
    ]


def test_it_normalizes_on_failure_email_to_a_list() -> None:
    defn = load(pipeline(on_failure={"email": "ops@example.com", "webhook": "http://h/x"}))
    assert defn["on_failure"] == {"email": ["ops@example.com"], "webhook": "http://h/x"}


# ---------------------------------------------------------------------------
# Tasks: common keys
# ---------------------------------------------------------------------------


def test_it_rejects_a_task_that_is_not_an_object() -> None:
    not_a_task: Any = "copy"
    assert problems(pipeline(not_a_task)) == ["tasks[0]: expected an object, got string"]


def test_it_rejects_a_task_without_name_and_type() -> None:
    assert problems(pipeline({"retries": 1})) == [
        "tasks[0].name: missing required key 'name'",
        "tasks[0].type: missing required key 'type'",
    ]


def test_it_rejects_unknown_task_keys() -> None:
    data = example()
    data["tasks"][0]["retry"] = 3
    assert problems(data) == ["tasks[0].retry: unknown key 'retry' (did you mean 'retries'?)"]


def test_it_rejects_keys_of_another_task_type() -> None:
    data = example()
    data["tasks"][1]["table"] = "x"
    assert problems(data) == [
        "tasks[1].table: unknown key 'table' (expected one of: connection, depends_on, name, "
        "retries, retry_delay, sql, timeout, type)"
    ]


def test_it_rejects_an_unknown_task_type() -> None:
    data = example()
    data["tasks"][1]["type"] = "python"
    assert problems(data) == [
        "tasks[1].type: unknown task type 'python' (expected one of: check, copy, sql)"
    ]


def test_it_rejects_bad_task_names() -> None:
    data = example()
    data["tasks"][2]["name"] = "orders ok"
    assert problems(data) == [
        "tasks[2].name: invalid name 'orders ok': use 1 to 100 letters, digits, '_' or '-', "
        "starting with a letter or '_'"
    ]


def test_it_rejects_retries_true() -> None:
    data = example()
    data["tasks"][0]["retries"] = True
    assert problems(data) == ["tasks[0].retries: expected an integer, got boolean"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("retries", -1, "must be between 0 and 100"),
        ("retries", 101, "must be between 0 and 100"),
        ("retry_delay", 86401, "must be between 0 and 86400"),
        ("timeout", 0, "must be between 1 and 86400"),
        ("timeout", 86401, "must be between 1 and 86400"),
        ("timeout", "1h", "expected an integer, got string"),
    ],
)
def test_it_rejects_retry_and_timeout_out_of_range(key: str, value: Any, message: str) -> None:
    assert problems(pipeline(copy_task(**{key: value}))) == [f"tasks[0].{key}: {message}"]


def test_it_rejects_duplicate_task_names() -> None:
    data = example()
    data["tasks"][2]["name"] = "copy_orders"
    data["tasks"][2]["depends_on"] = ["daily_totals"]
    assert problems(data) == ["tasks[2].name: duplicate task name 'copy_orders'"]


def test_it_rejects_an_unknown_dependency() -> None:
    data = example()
    data["tasks"][1]["depends_on"] = ["copy_order"]
    assert problems(data) == ["tasks[1].depends_on[0]: unknown task 'copy_order'"]


def test_it_rejects_a_self_dependency() -> None:
    data = example()
    data["tasks"][1]["depends_on"] = ["copy_orders", "daily_totals"]
    assert problems(data) == ["tasks[1].depends_on[1]: task 'daily_totals' depends on itself"]


def test_it_rejects_a_repeated_dependency() -> None:
    data = example()
    data["tasks"][1]["depends_on"] = ["copy_orders", "copy_orders"]
    assert problems(data) == ["tasks[1].depends_on[1]: task 'copy_orders' is listed twice"]


def test_it_rejects_depends_on_that_is_not_a_list() -> None:
    data = example()
    data["tasks"][1]["depends_on"] = "copy_orders"
    assert problems(data) == ["tasks[1].depends_on: expected a list, got string"]


def test_it_rejects_a_cycle_with_one_problem_naming_its_tasks() -> None:
    data = example()
    data["tasks"][0]["depends_on"] = ["orders_ok"]
    assert problems(data) == [
        "tasks[0].depends_on[0]: dependency cycle: "
        "copy_orders -> daily_totals -> orders_ok -> copy_orders"
    ]


def test_it_reports_each_separate_cycle() -> None:
    tasks = [
        copy_task(name="a", depends_on=["b"]),
        copy_task(name="b", depends_on=["a"]),
        copy_task(name="c", depends_on=["d"]),
        copy_task(name="d", depends_on=["c"]),
    ]
    assert problems(pipeline(*tasks)) == [
        "tasks[0].depends_on[0]: dependency cycle: a -> b -> a",
        "tasks[2].depends_on[0]: dependency cycle: c -> d -> c",
    ]


def test_it_reports_every_problem_at_once() -> None:
    data = example()
    data["name"] = ""
    data["tasks"][0]["retries"] = True
    data["tasks"][1]["depends_on"] = ["copy_order"]
    data["tasks"][2]["checks"] = []
    assert len(problems(data)) == 4


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
        "tasks[0].source.schema: unknown key 'schema' (expected one of: connection, query, table)"
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
        "(expected one of: connection, keys, mode, table)"
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
        "tasks[0].incremental.start: unknown key 'start' (expected one of: column)"
    ]


def test_it_rejects_incremental_with_replace() -> None:
    task = copy_task(incremental={"column": "id"})
    task["destination"]["mode"] = "replace"
    assert problems(pipeline(task)) == [
        "tasks[0].incremental: an incremental copy needs destination mode append or upsert "
        "(replace would drop the rows of earlier runs)"
    ]


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
