"""The pipeline definition (SPEC §2) as a whole: pipelines.definition.checker.

The example normalized and round-tripped, problems and errors, the
document's keys and the keys every task has, the task graph.
Each rejection test asserts the exact path and message, since the API
returns them as-is and the editor places them by path; none needs the
database.
"""

from __future__ import annotations

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
    validate,
)
from pipelines.tasktypes.registry import TASK_TYPES
from tests.pipelines.definition_examples import (
    EXAMPLE_JSON,
    EXAMPLE_YAML,
    copy_task,
    example,
    pipeline,
    problems,
    steps,
)

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
        "outlets, params, retries, retry_delay, sql, timeout, type)"
    ]


def test_it_rejects_an_unknown_task_type() -> None:
    data = example()
    data["tasks"][1]["type"] = "shell"
    types = ", ".join(sorted(TASK_TYPES))  # each helper's type registers itself
    assert "python" in TASK_TYPES
    assert problems(data) == [
        f"tasks[1].type: unknown task type 'shell' (expected one of: {types})"
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
