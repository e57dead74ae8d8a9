"""Task outputs (SPEC §8): each successful run's ``output``, and ``{output: [task, key]}``.

The checks at save need no database. The runs are real: ``run_task`` in this
process on a real SQLite file (only the broker hop is replaced by a list of
sent ids), read back through the API and the run page.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest

from core.checker import Checker, at
from pipelines.definition import load, task_schema
from pipelines.models import ExecutionStatus, TaskRunStatus
from pipelines.outputs import OUTPUT_MAX_BYTES
from pipelines.runner import run_task
from pipelines.services import execution_create, execution_rerun
from pipelines.tasktypes.base import Key, TaskContext, TaskType
from pipelines.tasktypes.registry import TASK_TYPES
from tests.pipelines.definition_examples import pipeline, problems
from tests.pipelines.inprocess import log_messages, run_all


def sql(name: str, statement: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "sql", "connection": "wh", "sql": statement, **extra}


def ref(task: str, key: str) -> dict[str, Any]:
    return {"output": [task, key]}


# ---------------------------------------------------------------- at save


def test_it_accepts_references_to_ancestors_in_params_and_filters() -> None:
    data = pipeline(
        sql("a", "DELETE FROM t"),
        sql("b", "SELECT 1", depends_on=["a"]),
        sql(
            "c",
            "INSERT INTO log VALUES (%(n)s, %(day)s, %(min)s)",
            depends_on=["b"],
            params={"n": ref("a", "rows_affected"), "day": {"param": "logical_date"}, "min": 5},
        ),
        {
            "name": "d",
            "type": "copy",
            "source": {"connection": "wh", "table": "src"},
            "transformations": [
                {
                    "function": "filter",
                    "params": {"where": [["id", ">", ref("a", "rows_affected")]]},
                }
            ],
            "destination": {"connection": "wh", "table": "dst"},
            "depends_on": ["c"],
        },
    )
    tasks = load(data)["tasks"]
    assert tasks[2]["params"] == {
        "n": {"output": ["a", "rows_affected"]},
        "day": {"param": "logical_date"},
        "min": 5,
    }
    assert tasks[3]["transformations"][0]["params"]["where"] == [
        ["id", ">", {"output": ["a", "rows_affected"]}]
    ]
    assert "params" not in tasks[0]  # only when given: saved versions do not change


def test_it_refuses_references_to_tasks_that_are_not_upstream() -> None:
    data = pipeline(
        sql("a", "SELECT 1"),
        sql("b", "SELECT 1"),
        sql(
            "c",
            "SELECT %(x)s, %(y)s, %(z)s",
            depends_on=["a"],
            params={"x": ref("b", "rows_affected"), "y": ref("c", "k"), "z": ref("nope", "k")},
        ),
    )
    assert problems(data) == [
        "tasks[2].params.x.output: task 'b' is not upstream of 'c': an output reference"
        " needs an ancestor through depends_on",
        "tasks[2].params.y.output: task 'c' cannot use its own output",
        "tasks[2].params.z.output: unknown task 'nope'",
    ]


def test_it_refuses_a_reference_to_a_downstream_task() -> None:
    data = pipeline(
        sql("a", "SELECT %(x)s", params={"x": ref("b", "rows_affected")}),
        sql("b", "SELECT 1", depends_on=["a"]),
    )
    assert problems(data) == [
        "tasks[0].params.x.output: task 'b' is not upstream of 'a': an output reference"
        " needs an ancestor through depends_on",
    ]


def test_it_refuses_malformed_references_and_params() -> None:
    data = pipeline(
        sql("a", "SELECT 1"),
        sql(
            "b",
            "SELECT %(p)s",
            depends_on=["a"],
            params={
                "p": ref("a", "k"),
                "one": {"output": ["a"]},
                "str": {"output": "a.k"},
                "extra": {"output": ["a", "k"], "more": 1},
                "empty": {"output": ["a", ""]},
                "nested": {"k": 1},
                "min_amount": 1,
                "bad name": 1,
                "list": [1, {"a": 1}],
            },
        ),
        parameters={"min_amount": 1},
    )
    assert problems(data) == [
        "tasks[1].params.one.output: expected [task, key], got a list of 1 items",
        "tasks[1].params.str.output: expected [task, key], got string",
        "tasks[1].params.extra.more: unknown key 'more' (expected one of: output)",
        "tasks[1].params.empty.output[1]: must not be empty",
        "tasks[1].params.nested.k: unknown key 'k' (expected one of: param)",
        "tasks[1].params.nested.param: missing required key 'param'",
        "tasks[1].params.min_amount: 'min_amount' is already a parameter of the pipeline;"
        " use another name",
        "tasks[1].params.bad name: invalid name 'bad name': use 1 to 100 letters, digits, '_'"
        " or '-', starting with a letter or '_'",
        "tasks[1].params.list[1]: expected a string, number, boolean or null, got object",
    ]


def test_it_lets_sql_and_check_sql_use_their_params_and_no_other_name() -> None:
    check = {
        "name": "k",
        "type": "check",
        "connection": "wh",
        "table": "t",
        "params": {"low": 3},
        "checks": [{"sql": "SELECT * FROM t WHERE n < %(low)s AND n > %(high)s"}],
    }
    assert problems(pipeline(check)) == [
        "tasks[0].checks[0].sql: unknown parameter 'high' in %(high)s"
    ]
    check["params"] = {"low": 3, "high": {"param": "logical_date"}}
    assert load(pipeline(check))["tasks"][0]["params"]["high"] == {"param": "logical_date"}
    assert problems(pipeline(sql("s", "SELECT %(low)s"))) == [
        "tasks[0].sql: unknown parameter 'low' in %(low)s"
    ]


def test_it_describes_params_in_the_task_schemas() -> None:
    for name in ("sql", "check"):
        schema = task_schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert "params" in schema["properties"]
    task = sql("s", "SELECT %(a)s", params={"a": ref("x", "k"), "b": {"param": "p"}, "c": [1]})
    jsonschema.validate(task, task_schema("sql"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**task, "params": {"a": {"output": ["x"]}}}, task_schema("sql"))


# ---------------------------------------------------------------- at run time


class EmitTask(TaskType):
    """A test-only type whose output is ``value`` as given (``{"x": NaN}`` with ``nan``)."""

    name: ClassVar[str] = "emit"
    keys: ClassVar[dict[str, Key]] = {"value": Key({}, required=True), "nan": Key({})}

    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        return {"value": task.get("value"), "nan": bool(task.get("nan"))}

    def run(self, ctx: TaskContext) -> None:
        # NaN cannot even be saved in a definition: only code can return it.
        ctx.output = {"x": float("nan")} if ctx.task["nan"] else ctx.task["value"]


@pytest.fixture
def emit() -> Iterator[None]:
    TASK_TYPES["emit"] = EmitTask()
    try:
        yield
    finally:
        del TASK_TYPES["emit"]


@pytest.fixture
def data(make_pipeline: Callable[..., Any], settings: Any) -> Path:
    """The DATA_ROOT of this test (where the ``wh`` connection's file lives)."""
    make_pipeline("seed")
    return Path(settings.DATA_ROOT)


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path / "wh.sqlite") as db:
        return list(db.execute(query))


pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
@pytest.mark.usefixtures("no_broker")
def test_it_hands_sql_outputs_downstream_as_bound_values(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    pipeline_ = make_pipeline(
        "chain",
        tasks=[
            sql("make", ["CREATE TABLE t (n INTEGER)", "INSERT INTO t VALUES (1), (2), (3)"]),
            sql(
                "note",
                [
                    "CREATE TABLE log (n INTEGER, tag TEXT)",
                    "INSERT INTO log VALUES (%(n)s, %(label)s)",
                ],
                depends_on=["make"],
                params={"n": ref("make", "rows_affected"), "label": {"param": "tag"}},
            ),
            {
                "name": "ok",
                "type": "check",
                "connection": "wh",
                "table": "t",
                "depends_on": ["note"],
                "params": {"most": ref("make", "rows_affected")},
                "checks": [{"sql": "SELECT * FROM t WHERE n > %(most)s"}],
            },
        ],
        parameters={"tag": "nightly"},
    )
    execution = run_all(execution_create(pipeline=pipeline_), no_broker)
    assert execution.status == ExecutionStatus.SUCCESS
    assert rows(data, "SELECT n, tag FROM log") == [(3, "nightly")]
    outputs = {tr.task_name: tr.output for tr in execution.tasks.all()}
    assert outputs == {
        "make": {"rows_affected": 3},
        "note": {"rows_affected": 1},
        "ok": {"checks_passed": 1, "checks_failed": 0},
    }


@pytestmark_db
@pytest.mark.usefixtures("no_broker")
def test_it_gives_a_copy_rows_read_and_written_and_filters_on_an_output(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    rows(data, "SELECT 1")  # creates the file
    with sqlite3.connect(data / "wh.sqlite") as db:
        db.execute("CREATE TABLE src (id INTEGER, name TEXT)")
        db.executemany("INSERT INTO src VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 6)])
    pipeline_ = make_pipeline(
        "copier",
        tasks=[
            sql("mark", ["CREATE TABLE marks (x INTEGER)", "INSERT INTO marks VALUES (1), (2)"]),
            {
                "name": "move",
                "type": "copy",
                "source": {"connection": "wh", "table": "src"},
                "transformations": [
                    {
                        "function": "filter",
                        "params": {"where": [["id", ">", ref("mark", "rows_affected")]]},
                    }
                ],
                "destination": {"connection": "wh", "table": "dst"},
                "depends_on": ["mark"],
            },
        ],
    )
    execution = run_all(execution_create(pipeline=pipeline_), no_broker)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    assert execution.tasks.get(task_name="mark").output == {"rows_affected": 2}
    assert rows(data, "SELECT id FROM dst ORDER BY id") == [(3,), (4,), (5,)]
    assert execution.tasks.get(task_name="move").output == {
        "rows_read": 3,
        "rows_written": 3,
        # No retry (retries: 0) could resume it, so it is not staged; the output says why.
        "not_resumable": "no retry left (retries: 0 or spent): no later attempt would resume it",
    }


@pytestmark_db
@pytest.mark.usefixtures("no_broker")
def test_it_fails_a_task_whose_reference_names_a_missing_key(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    pipeline_ = make_pipeline(
        "missing",
        tasks=[
            sql("a", "SELECT 1"),
            sql("b", "SELECT %(n)s", depends_on=["a"], params={"n": ref("a", "rows_written")}),
        ],
    )
    execution = run_all(execution_create(pipeline=pipeline_), no_broker)
    assert execution.status == ExecutionStatus.FAILED
    b = execution.tasks.get(task_name="b")
    assert b.status == TaskRunStatus.FAILED and b.output is None
    assert b.error == (
        "{output: [a, rows_written]}: the output of task 'a' has no key 'rows_written'"
        " (its keys: rows_affected)"
    )


@pytestmark_db
@pytest.mark.usefixtures("no_broker", "emit")
@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([1, 2], "the task's output must be a JSON object (a dict), got list"),
        ("x", "the task's output must be a JSON object (a dict), got string"),
        (
            {"big": "x" * OUTPUT_MAX_BYTES},
            "the task's output is 65,546 bytes of JSON, over the limit of 65,536 bytes (64 KiB)",
        ),
        (
            "nan",
            "the task's output is not JSON-serialisable: Out of range float values are not"
            " JSON compliant",
        ),
    ],
)
def test_it_fails_a_task_whose_output_is_not_an_object_or_too_big(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any], value: Any, error: str
) -> None:
    pipeline_ = make_pipeline("emitter", tasks=[{"name": "e", "type": "emit", "value": 0}])
    execution = execution_create(pipeline=pipeline_)
    task_run = execution.tasks.get()
    task_run.spec = {**task_run.spec, "value": value, "nan": value == "nan"}
    task_run.save(update_fields=["spec"])
    assert run_task(str(task_run.pk)) == "failed"
    task_run.refresh_from_db()
    assert task_run.error == error and task_run.output is None
    assert f"failed: {error}" in log_messages(task_run)


@pytestmark_db
@pytest.mark.usefixtures("no_broker", "emit")
def test_it_keeps_an_output_of_exactly_64_kib(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    value = {"big": "é" * ((OUTPUT_MAX_BYTES - len('{"big":""}')) // 2)}
    pipeline_ = make_pipeline("edge", tasks=[{"name": "e", "type": "emit", "value": value}])
    execution = run_all(execution_create(pipeline=pipeline_), no_broker)
    assert execution.status == ExecutionStatus.SUCCESS
    assert execution.tasks.get().output == value


@pytestmark_db
@pytest.mark.usefixtures("no_broker", "emit")
def test_it_finds_the_output_of_a_task_a_rerun_carried_over(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    pipeline_ = make_pipeline(
        "again",
        tasks=[
            {"name": "e", "type": "emit", "value": {"n": 7}},
            sql(
                "use",
                [
                    "CREATE TABLE IF NOT EXISTS got (n INTEGER)",
                    "INSERT INTO got VALUES (%(n)s)",
                    "SELECT * FROM not_yet",
                ],
                depends_on=["e"],
                params={"n": ref("e", "n")},
            ),
        ],
    )
    first = run_all(execution_create(pipeline=pipeline_), no_broker)
    assert first.status == ExecutionStatus.FAILED
    rows(data, "CREATE TABLE not_yet (x INTEGER)")
    second = execution_rerun(execution=first)
    assert second.tasks.get(task_name="e").status == TaskRunStatus.SKIPPED
    second = run_all(second, no_broker)
    assert second.status == ExecutionStatus.SUCCESS, second.tasks.get(task_name="use").error
    assert rows(data, "SELECT n FROM got") == [(7,)]


@pytestmark_db
@pytest.mark.usefixtures("no_broker", "emit")
def test_it_shows_outputs_in_the_api_and_on_the_run_page(
    make_pipeline: Callable[..., Any],
    data: Path,
    no_broker: list[Any],
    developer: Any,
    api_client_for: Any,
    client_for: Any,
) -> None:
    pipeline_ = make_pipeline(
        "shown",
        tasks=[{"name": "e", "type": "emit", "value": {"answer": 42, "who": "<b>me</b>"}}],
        user=developer,
    )
    execution = run_all(execution_create(pipeline=pipeline_), no_broker)
    body = api_client_for(developer).get(f"/api/v1/executions/{execution.pk}").json()
    assert [t["output"] for t in body["tasks"]] == [{"answer": 42, "who": "<b>me</b>"}]
    listed = api_client_for(developer).get("/api/v1/executions").json()
    (mine,) = [e for e in listed["results"] if e["execution_id"] == str(execution.pk)]
    assert mine["tasks"][0]["output"] == {"answer": 42, "who": "<b>me</b>"}
    page = client_for(developer).get(f"/runs/{execution.pk}").content.decode()
    assert "<summary>Output</summary>" in page
    assert "&quot;answer&quot;: 42" in page and "&lt;b&gt;me&lt;/b&gt;" in page


def test_it_keeps_the_checker_free_of_output_refs_it_did_not_meet() -> None:
    c = Checker()
    assert c.param_ref("p", {"output": ["a", "k"]}) == {"output": ["a", "k"]}
    assert c.output_refs == [("p", "a", "k")]
    assert c.param_ref(at("p", "q"), {"param": "x"}) is None  # unknown parameter
    assert c.output_refs == [("p", "a", "k")]
