"""``python`` tasks (SPEC §8): the allow-list, the checks at save, and runs in this process.

The functions are real ones in tests/pyjobs, allowed by PYTHON_TASK_MODULES
=tests.pyjobs. Runs use ``run_task`` on a real SQLite file exactly as a
worker does (only the broker hop is a list); the worker-process end of a
function that ignores a stop is in test_tasktypes_python_workers.py.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
from django.db import connections

from accounts.actor import Actor
from accounts.permissions import Level
from connectors.models import Connection
from core.errors import InvalidInput
from pipelines.definition import connection_refs, load, task_schema, with_connections_renamed
from pipelines.engine.reaper import reap
from pipelines.models import Execution, ExecutionStatus, TaskRunStatus
from pipelines.runner import run_task
from pipelines.services import execution_cancel, execution_create, pipeline_create
from pipelines.tasktypes.python import refusal
from tests import factories
from tests.pipelines.definition_examples import pipeline, problems
from tests.pipelines.inprocess import log_messages, run_all
from tests.services import scratch_postgres_db
from tests.workers import BASE_DIR

ALLOWED = ["tests.pyjobs"]


@pytest.fixture(autouse=True)
def allowed(settings: Any) -> None:
    settings.PYTHON_TASK_MODULES = ALLOWED


def py(name: str, function: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "python", "callable": f"tests.pyjobs.jobs:{function}", **extra}


# ---------------------------------------------------------------- allow-list


@pytest.mark.parametrize(
    ("packages", "module", "allowed"),
    [
        (["acme_jobs"], "acme_jobs", True),
        (["acme_jobs"], "acme_jobs.orders", True),
        (["acme_jobs"], "acme_jobsx", False),
        (["acme_jobs"], "acme_jobsx.orders", False),
        (["acme_jobs.orders"], "acme_jobs", False),
        (["acme_jobs.orders"], "acme_jobs.orders.daily", True),
        (["other", "acme_jobs"], "acme_jobs.orders", True),
    ],
)
def test_it_matches_modules_by_dotted_path(
    settings: Any, packages: list[str], module: str, allowed: bool
) -> None:
    settings.PYTHON_TASK_MODULES = packages
    assert (refusal(module) is None) is allowed


def test_it_refuses_every_python_task_while_the_setting_is_empty(settings: Any) -> None:
    settings.PYTHON_TASK_MODULES = []
    assert problems(pipeline(py("p", "add", kwargs={"a": 1}))) == [
        "tasks[0].callable: python tasks are turned off on this installation:"
        " PYTHON_TASK_MODULES is empty (set it to the packages whose functions tasks may call,"
        " e.g. acme_jobs)"
    ]


def test_it_allows_no_module_by_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_TASK_MODULES"}
    env["DATADOG_VAR_DIR"] = str(tmp_path / "var")
    shown = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.PYTHON_TASK_MODULES)",
        ],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout.strip().splitlines()[-1] == "[]", shown.stderr


def test_it_refuses_a_module_outside_the_listed_packages() -> None:
    assert problems(pipeline({**py("p", "add"), "callable": "tests.pyjobsx:add"})) == [
        "tasks[0].callable: module 'tests.pyjobsx' is not under a package listed in"
        " PYTHON_TASK_MODULES (tests.pyjobs)"
    ]
    assert problems(pipeline({**py("p", "add"), "callable": "os:system"})) == [
        "tasks[0].callable: module 'os' is not under a package listed in"
        " PYTHON_TASK_MODULES (tests.pyjobs)"
    ]


# ---------------------------------------------------------------- at save


def test_it_accepts_a_python_task_and_normalizes_it() -> None:
    data = pipeline(
        {"name": "a", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
        py(
            "b",
            "add",
            connections=["wh", "dwh"],
            kwargs={"a": {"output": ["a", "rows_affected"]}, "b": {"param": "n"}},
            depends_on=["a"],
        ),
        py("c", "nothing"),
        parameters={"n": 2},
    )
    tasks = load(data)["tasks"]
    assert tasks[1] == {
        "name": "b",
        "type": "python",
        "callable": "tests.pyjobs.jobs:add",
        "connections": ["wh", "dwh"],
        "kwargs": {"a": {"output": ["a", "rows_affected"]}, "b": {"param": "n"}},
        "depends_on": ["a"],
        "retries": 0,
        "retry_delay": 10,
        "timeout": 3600,
    }
    assert tasks[2]["connections"] == [] and tasks[2]["kwargs"] == {}
    schema = task_schema("python")
    jsonschema.Draft202012Validator.check_schema(schema)
    for task in (data["tasks"][1], tasks[1], tasks[2]):
        jsonschema.validate(task, schema)


def test_it_checks_the_module_the_function_and_its_arguments() -> None:
    cases = {
        "tests.pyjobs.missing:add": "tasks[0].callable: cannot import module"
        " 'tests.pyjobs.missing': ModuleNotFoundError: No module named 'tests.pyjobs.missing'",
        "tests.pyjobs.jobs:absent": "tasks[0].callable: module 'tests.pyjobs.jobs' has no"
        " attribute 'absent'",
        "tests.pyjobs.jobs:NOT_CALLABLE": "tasks[0].callable: 'tests.pyjobs.jobs:NOT_CALLABLE'"
        " is not callable",
        "tests.pyjobs.jobs": "tasks[0].callable: expected 'module:function'"
        " (e.g. 'acme_jobs.orders:enrich'), got 'tests.pyjobs.jobs'",
        "tests.pyjobs.jobs:add()": "tasks[0].callable: expected 'module:function'"
        " (e.g. 'acme_jobs.orders:enrich'), got 'tests.pyjobs.jobs:add()'",
    }
    for spec, problem in cases.items():
        assert problems(pipeline({"name": "p", "type": "python", "callable": spec})) == [problem]
    assert problems(pipeline(py("p", "add", kwargs={"b": 1}))) == [
        "tasks[0].kwargs: tests.pyjobs.jobs:add cannot be called as function(ctx, **kwargs):"
        " missing a required argument: 'a'"
    ]
    assert problems(pipeline(py("p", "add", kwargs={"a": 1, "c": 2}))) == [
        "tasks[0].kwargs: tests.pyjobs.jobs:add cannot be called as function(ctx, **kwargs):"
        " got an unexpected keyword argument 'c'"
    ]


def test_it_refuses_bad_connections_and_kwargs() -> None:
    task = py(
        "p",
        "describe",
        connections=["wh", "wh", "bad name"],
        kwargs={"ok": 1, "for": 2, "x-y": 3, "r": {"output": ["nope", "k"]}},
    )
    assert problems(pipeline(task)) == [
        "tasks[0].connections[1]: connection 'wh' is listed twice",
        "tasks[0].connections[2]: invalid name 'bad name': use 1 to 100 letters, digits, '_'"
        " or '-', starting with a letter or '_'",
        "tasks[0].kwargs.for: 'for' is not a Python argument name",
        "tasks[0].kwargs.x-y: 'x-y' is not a Python argument name",
        "tasks[0].kwargs.r.output: unknown task 'nope'",
    ]


def test_it_lists_the_task_connections_among_the_definition_refs() -> None:
    defn = load(pipeline(py("p", "describe", connections=["wh", "dwh"])))
    assert connection_refs(defn) == [
        ("tasks[0].connections[0]", "wh"),
        ("tasks[0].connections[1]", "dwh"),
    ]
    renamed = with_connections_renamed(defn, {"wh": "warehouse"})
    assert renamed["tasks"][0]["connections"] == ["warehouse", "dwh"]


@pytest.mark.django_db
def test_it_checks_the_use_right_on_each_connection_on_save(
    make_user: Callable[..., Any], sqlite_connection: Callable[..., Any]
) -> None:
    owner, other = make_user("owner1"), make_user("other1")
    sqlite_connection("mine", "mine.sqlite", user=other)
    sqlite_connection("yours", "yours.sqlite", user=owner)
    data = pipeline(py("p", "describe", connections=["yours", "mine", "ghost"]))
    with pytest.raises(InvalidInput) as refused:
        pipeline_create(data=data, actor=Actor.of(owner))
    assert refused.value.errors == [
        {"path": "tasks[0].connections[1]", "message": "unknown connection 'mine'"},
        {"path": "tasks[0].connections[2]", "message": "unknown connection 'ghost'"},
    ]
    factories.share(Connection.objects.get(name="mine"), owner, Level.OPERATE)  # may use it
    del data["tasks"][0]["connections"][2]
    created = pipeline_create(data=data, actor=Actor.of(owner))
    assert created.versions.get().bindings.count() == 2


# ---------------------------------------------------------------- runs

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(make_pipeline: Callable[..., Any], settings: Any) -> Path:
    make_pipeline("seed")  # creates ``wh`` under the per-test DATA_ROOT
    return Path(settings.DATA_ROOT)


def cancel_soon(execution: Execution) -> None:
    """Cancel ``execution`` from another thread (its own database connection) in 1.5 s."""

    def cancel() -> None:
        time.sleep(1.5)
        try:
            execution_cancel(execution=Execution.objects.get(pk=execution.pk), reason="by test")
        finally:
            connections.close_all()

    threading.Thread(target=cancel, daemon=True).start()


@pytestmark_db
def test_it_calls_the_function_with_ctx_and_kwargs_and_keeps_its_return_value(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    pipe = make_pipeline(
        "pyrun",
        tasks=[
            py("first", "add", kwargs={"a": 2, "b": 3}),
            py(
                "second",
                "describe",
                depends_on=["first"],
                kwargs={
                    "total": {"output": ["first", "sum"]},
                    "day": {"param": "logical_date"},
                    "tags": ["x", "y"],
                    "n": {"param": "n"},
                },
            ),
            py("third", "nothing", depends_on=["second"]),
        ],
        parameters={"n": 5},
    )
    execution = run_all(execution_create(pipeline=pipe, parameters={"n": 6}), no_broker)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    first, second, third = (execution.tasks.get(task_name=n) for n in ("first", "second", "third"))
    assert first.output == {"sum": 5}
    assert "adding 2 and 3" in log_messages(first)
    out = second.output
    assert out["execution_id"] == str(execution.pk) and out["task_name"] == "second"
    assert out["logical_date"] == execution.logical_date.isoformat() and out["tzinfo"] is True
    assert out["parameters"] == execution.parameters and out["parameters"]["n"] == 6
    assert out["kwargs"] == {
        "total": 5,
        "day": execution.parameters["logical_date"],
        "tags": ["x", "y"],
        "n": 6,
    }
    assert out["cancelled"] is False
    assert third.output == {}


@pytestmark_db
def test_it_fails_with_the_exception_type_and_message_and_logs_the_traceback(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    execution = run_all(
        execution_create(pipeline=make_pipeline("pyboom", tasks=[py("b", "boom")])), no_broker
    )
    task_run = execution.tasks.get()
    assert task_run.status == TaskRunStatus.FAILED and task_run.retry_count == 0
    assert task_run.error == "ValueError: bad row 7"
    log = log_messages(task_run)
    (trace,) = [m for m in log if m.startswith("Traceback")]
    assert 'in boom\n    raise ValueError("bad row 7")' in trace and "jobs.py" in trace
    assert log[-1] == "failed: ValueError: bad row 7"


@pytestmark_db
def test_it_retries_an_exception_per_retries_and_resumes_from_the_checkpoint(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    pipe = make_pipeline(
        "pyflaky", tasks=[py("f", "flaky", kwargs={"fail_times": 2}, retries=2, retry_delay=0)]
    )
    execution = execution_create(pipeline=pipe)
    task_run = execution.tasks.get()
    for attempt in (1, 2):
        assert run_task(str(task_run.pk)) == "up_for_retry"
        task_run.refresh_from_db()
        assert task_run.error == f"RuntimeError: attempt {attempt} fails on purpose"
        time.sleep(0.05)
        no_broker.clear()
        reap()  # the reaper queues the due retry
        assert no_broker == [task_run.pk]
    assert run_task(str(task_run.pk)) == "success"
    task_run.refresh_from_db()
    assert task_run.output == {"tries": 3} and task_run.retry_count == 2


@pytestmark_db
def test_it_opens_only_the_declared_connections(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    pipe = make_pipeline(
        "pyconn",
        tasks=[
            py("ok", "answer", connections=["wh"], kwargs={"connection": "wh"}),
            py("undeclared", "answer", kwargs={"connection": "wh"}, depends_on=["ok"]),
        ],
    )
    execution = run_all(execution_create(pipeline=pipe), no_broker)
    ok, undeclared = (
        execution.tasks.get(task_name="ok"),
        execution.tasks.get(task_name="undeclared"),
    )
    assert ok.output == {"rows": 1}
    with sqlite3.connect(data / "wh.sqlite") as db:
        assert list(db.execute("SELECT n FROM py_answers")) == [(42,)]  # committed
    assert undeclared.status == TaskRunStatus.FAILED
    assert undeclared.error == "connection 'wh' is not one of this task's connections (none)"


@pytestmark_db
def test_it_fails_a_function_whose_return_value_is_not_an_object(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    execution = run_all(
        execution_create(pipeline=make_pipeline("pylist", tasks=[py("l", "returns_list")])),
        no_broker,
    )
    assert execution.tasks.get().error == (
        "the task's output must be a JSON object (a dict), got list"
    )


@pytestmark_db
def test_it_refuses_to_run_a_module_the_worker_does_not_allow(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any], settings: Any
) -> None:
    pipe = make_pipeline("pyoff", tasks=[py("a", "add", kwargs={"a": 1})])
    settings.PYTHON_TASK_MODULES = ["acme_jobs"]  # this worker's setting since the save
    execution = run_all(execution_create(pipeline=pipe), no_broker)
    assert execution.tasks.get().error == (
        "module 'tests.pyjobs.jobs' is not under a package listed in PYTHON_TASK_MODULES"
        " (acme_jobs)"
    )


@pytestmark_db
@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_it_tells_the_function_to_stop_and_ends_the_run_as_the_stop_says(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any], how: str
) -> None:
    timeout = 2 if how == "timeout" else 60
    pipe = make_pipeline(f"pystop{how}", tasks=[py("p", "polite", timeout=timeout)])
    execution = execution_create(pipeline=pipe)
    task_run = execution.tasks.get()

    if how == "cancel":
        cancel_soon(execution)
    outcome = run_task(str(task_run.pk))
    task_run.refresh_from_db()
    assert "stopping as asked" in log_messages(task_run)
    if how == "cancel":
        assert outcome == "cancelled" and task_run.status == TaskRunStatus.CANCELLED
    else:
        assert outcome == "failed" and task_run.error == "timed out after 2s"
    assert task_run.output is None  # returned, but told to stop: not a success


@pytest.fixture
def pg(transactional_db: Any) -> Iterator[str]:
    """A scratch PostgreSQL database behind a connection named ``pg``."""
    with scratch_postgres_db() as url:
        factories.postgresql_connection("pg", url)
        yield url


@pytestmark_db
def test_it_gives_a_postgresql_connection_in_a_transaction(pg: str, no_broker: list[Any]) -> None:
    pipe = pipeline_create(
        data=pipeline(py("ask", "answer", connections=["pg"], kwargs={"connection": "pg"}))
    )
    execution = run_all(execution_create(pipeline=pipe), no_broker)
    assert execution.tasks.get().output == {"rows": 1}, execution.tasks.get().error
    with psycopg.connect(pg) as db:
        assert db.execute("SELECT n FROM py_answers").fetchall() == [(42,)]  # committed


@pytestmark_db
def test_it_stops_the_running_statement_in_postgresql_on_cancel(
    pg: str, no_broker: list[Any]
) -> None:
    task = py("nap", "sleep_in_database", connections=["pg"], kwargs={"connection": "pg"})
    execution = execution_create(pipeline=pipeline_create(data=pipeline(task)))
    task_run = execution.tasks.get()

    cancel_soon(execution)
    assert run_task(str(task_run.pk)) == "cancelled"
    # pg_sleep(60) was cancelled in the server: the function returned at once,
    # not after the 10 s the watchdog grants before it steps in.
    assert log_messages(task_run)[1:] == [
        "calling tests.pyjobs.jobs:sleep_in_database",
        "cancelled: execution cancelled",  # no "still running 10s after it was told to stop"
    ]
    with psycopg.connect(pg) as db:
        active = db.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%%'"
        ).fetchone()
    assert active == (0,)


@pytestmark_db
def test_it_records_the_end_of_a_stuck_function_but_leaves_a_non_worker_process_alone(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any], tmp_path: Path
) -> None:
    """In this process (not a worker) the watchdog records the timeout after 10 s and
    does not end the process; the function's own late report is then refused."""
    marker = tmp_path / "stuck.marker"
    kwargs = {"marker": str(marker), "seconds": 13}
    pipe = make_pipeline("pystuck", tasks=[py("s", "stubborn", kwargs=kwargs, timeout=1)])
    task_run = execution_create(pipeline=pipe).tasks.get()
    assert run_task(str(task_run.pk)) == "lease lost"  # its end was recorded before it returned
    task_run.refresh_from_db()
    assert task_run.status == TaskRunStatus.FAILED
    assert task_run.error == "timed out after 1s; the task ignored it for 10s"
    assert marker.read_text() == "told to stop"
    assert "still running 10s after it was told to stop" in log_messages(task_run)
