"""pipelines.tasktypes.registry: one line registers a type for the checker and the engine.

A tiny test-only type (``echo``) is registered by a fixture with the one line
a new type needs, then unregistered. The definition checker must then check
its keys, the worker must run it and ``task_schema`` describe it, with
nothing else changed. Each registered type's schema must also hold every
task its check accepts, as given and as normalized.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import jsonschema
import pytest

from core.checker import Checker, at
from pipelines.definition import Problem, load, parse_text, task_schema, validate
from pipelines.models import TaskLogLine
from pipelines.runner import run_task
from pipelines.services import execution_create
from pipelines.tasktypes.base import Key, TaskContext, TaskType
from pipelines.tasktypes.registry import TASK_TYPES, task_type
from tests.pipelines.definition_examples import EXAMPLE_YAML, copy_task


class EchoTask(TaskType):
    """Log ``message`` ``times`` times."""

    name: ClassVar[str] = "echo"
    keys: ClassVar[dict[str, Key]] = {
        "message": Key({"type": "string", "minLength": 1}, required=True),
        "times": Key({"type": "integer", "minimum": 1, "maximum": 10, "default": 1}),
    }

    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"message": None, "times": 1}
        if "message" in task:
            out["message"] = c.string(at(path, "message"), task["message"], nonempty=True)
        if "times" in task:
            out["times"] = c.integer(at(path, "times"), task["times"], 1, 10)
        return out

    def run(self, ctx: TaskContext) -> None:
        for _ in range(ctx.task["times"]):
            ctx.log(ctx.task["message"])
        ctx.metrics["echoed"] = ctx.task["times"]


@pytest.fixture
def echo() -> Iterator[None]:
    TASK_TYPES["echo"] = EchoTask()  # the one line a new task type adds to the registry
    try:
        yield
    finally:
        del TASK_TYPES["echo"]


def definition(**task: Any) -> dict[str, Any]:
    return {"name": "echoes", "tasks": [{"name": "e", "type": "echo", **task}]}


@pytest.mark.usefixtures("echo")
def test_it_checks_a_registered_type_with_its_own_check() -> None:
    normalized, problems = validate(definition(message="hi", retries=2))
    assert problems == []
    assert normalized is not None
    assert normalized["tasks"][0] == {
        "name": "e",
        "type": "echo",
        "message": "hi",
        "retries": 2,
        "times": 1,
        "depends_on": [],
        "retry_delay": 10,
        "timeout": 3600,
    }
    _, problems = validate(definition(times=0, colour="red"))
    assert problems == [
        Problem("tasks[0].colour", "unknown key 'colour' (expected one of: " + _keys() + ")"),
        Problem("tasks[0].message", "missing required key 'message'"),
        Problem("tasks[0].times", "must be between 1 and 10"),
    ]


def _keys() -> str:
    return ", ".join(
        sorted(
            ["message", "times", "name", "type", "depends_on", "retries", "retry_delay", "timeout"]
        )
    )


def test_it_refuses_a_type_once_unregistered() -> None:
    assert "echo" not in TASK_TYPES
    _, problems = validate(definition(message="hi"))
    assert [p.path for p in problems] == ["tasks[0].type"]
    assert problems[0].message.startswith("unknown task type 'echo'")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("echo", "no_broker")
def test_it_runs_a_registered_type_in_the_worker(make_pipeline: Callable[..., Any]) -> None:
    pipeline = make_pipeline(
        "echoes", tasks=[{"name": "e", "type": "echo", "message": "hi", "times": 2}]
    )
    execution = execution_create(pipeline=pipeline)
    run = execution.tasks.get(task_name="e")
    assert task_type("echo").name == "echo"
    assert run_task(str(run.pk)) == "success"
    run.refresh_from_db()
    assert run.metrics["echoed"] == 2
    lines = (
        TaskLogLine.objects.filter(task_run=run).order_by("seq").values_list("message", flat=True)
    )
    assert list(lines)[1:] == ["hi", "hi", "succeeded"]


@pytest.mark.usefixtures("echo")
def test_it_describes_a_registered_type_as_a_json_schema() -> None:
    schema = task_schema("echo")
    jsonschema.validate({"name": "e", "type": "echo", "message": "hi", "retries": 1}, schema)
    for wrong in [
        {"name": "e", "type": "echo"},  # no message
        {"name": "e", "type": "echo", "message": "hi", "colour": "red"},
        {"name": "e", "type": "echo", "message": "hi", "times": 11},
        {"name": "e", "type": "sql", "message": "hi"},
    ]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)


# Tasks of every registered type that their checks accept, each optional key used.
VALID_TASKS = [
    *parse_text(EXAMPLE_YAML)["tasks"],
    copy_task(
        source={"connection": "s", "query": "SELECT 1 AS id"},
        transformations=[
            {"function": "cast", "params": {"columns": {"id": "bigint"}}},
            {"function": "dedupe", "params": {"keys": ["id"]}},
            {"function": "mask", "params": {"columns": ["id"], "method": "redact"}},
            {"function": "aggregate", "params": {"metrics": {"n": ["count", "*"]}}},
        ],
        incremental=None,
        partition=None,
        batch_size=1000,
        depends_on=[],
    ),
    {"name": "s", "type": "sql", "connection": "c", "sql": ["DELETE FROM t", "SELECT 1"]},
    {
        "name": "k",
        "type": "check",
        "connection": "c",
        "table": "t",
        "checks": [{"row_count": {"max": 9}}, {"sql": "SELECT 1 WHERE false"}],
    },
    {"name": "w", "type": "wait", "connection": "c", "sql": "SELECT %(min_amount)s > 0"},
    {"name": "f", "type": "wait", "connection": "c", "file": "in/*.csv", "interval": 5},
    {
        "name": "py",
        "type": "python",
        "callable": "tests.pyjobs.jobs:add",
        "connections": ["c"],
        "kwargs": {"a": {"param": "min_amount"}, "b": 2},
    },
    {
        "name": "d",
        "type": "dbt",
        "connection": "c",
        "project": "shop",
        "command": "build",
        "select": "tag:nightly",
        "vars": {"n": 1, "day": {"param": "logical_date"}, "tags": ["a", "b"]},
    },
]


@pytest.mark.parametrize("task", VALID_TASKS, ids=lambda t: f"{t['type']}-{t['name']}")
def test_it_describes_each_type_by_a_schema_its_valid_tasks_fit(
    task: dict[str, Any], settings: Any
) -> None:
    settings.PYTHON_TASK_MODULES = ["tests.pyjobs"]  # python tasks call tests/pyjobs
    schema = task_schema(task["type"])
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(task, schema)
    alone = {**task, "depends_on": []}  # its upstream tasks are not in this definition
    parameters = {"min_amount": 1}
    (normalized,) = load({"name": "p", "parameters": parameters, "tasks": [alone]})["tasks"]
    jsonschema.validate(normalized, schema)


def test_it_has_a_schema_for_every_registered_type() -> None:
    assert {task["type"] for task in VALID_TASKS} == set(TASK_TYPES)
