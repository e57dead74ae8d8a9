"""pipelines/definition/schema.py and its endpoint: the format as a JSON Schema.

The schema is the checker's, not a copy: same top-level keys, one branch per
registered task type, and every definition the checker accepts fits it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from pipelines.definition import load, validate
from pipelines.definition.checker import PIPELINE_FIELDS, PIPELINE_REQUIRED
from pipelines.definition.schema import SCHEMA_ID, TOP_LEVEL, definition_schema
from pipelines.tasktypes.registry import TASK_TYPES
from tests.http import url
from tests.pipelines.definition_examples import example
from tests.pipelines.test_tasktypes_registry import VALID_TASKS


def validator() -> jsonschema.Draft202012Validator:
    schema = definition_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_it_has_the_checkers_top_level_keys() -> None:
    assert list(TOP_LEVEL) == list(PIPELINE_FIELDS)
    assert definition_schema()["required"] == list(PIPELINE_REQUIRED)


def test_it_has_a_branch_for_every_registered_task_type() -> None:
    defs = definition_schema()["$defs"]
    assert defs["task"]["properties"]["type"]["enum"] == sorted(TASK_TYPES)
    assert {name for name in defs if name.startswith("task_")} == {
        f"task_{name}" for name in TASK_TYPES
    }


def test_the_spec_example_fits_as_written_and_as_normalized() -> None:
    check = validator()
    written = example()
    check.validate(written)
    check.validate(load(copy.deepcopy(written)))


@pytest.mark.parametrize("task", VALID_TASKS, ids=lambda t: f"{t['type']}-{t['name']}")
def test_a_pipeline_of_each_valid_task_fits(task: dict[str, Any]) -> None:
    data = {
        "name": "p",
        "schedule": {"assets": ["wh.public.orders"]},
        "parameters": {"min_amount": 1},
        "tasks": [{**task, "depends_on": []}],
    }
    validator().validate(data)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"owner": "x"}, "owner"),  # not a key of the format
        ({"tasks": []}, "tasks"),
        ({"max_active_runs": 0}, "max_active_runs"),
        ({"tasks": [{"name": "t", "type": "shell", "command": "ls"}]}, "shell"),
        ({"tasks": [{"name": "t", "type": "sql", "connection": "c"}]}, "sql"),
        ({"tasks": [{"name": "t", "type": "sql", "connection": "c", "sql": "x", "x": 1}]}, "x"),
    ],
)
def test_it_refuses_what_the_checker_refuses(change: dict[str, Any], where: str) -> None:
    data = {**example(), **change}
    errors = list(validator().iter_errors(data))
    assert errors, data
    assert validate(data)[1]
    assert any(where in (error.message + str(list(error.path))) for error in errors), [
        e.message for e in errors
    ]


@pytest.mark.django_db
def test_the_api_serves_it_to_signed_in_users(
    developer: Any, api_client_for: Callable[[Any], Any]
) -> None:
    response = api_client_for(developer).get(url("schema/definition.json"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["$id"] == SCHEMA_ID
    assert body == definition_schema()
