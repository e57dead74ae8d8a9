"""Finished executions' API answers, stored once (``pipelines.answers``).

A stored answer must read exactly as the live one, keep following the
pipeline's name, never be stored while anything in it can change, and be
ignored when it was written in another format or time zone.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.actor import Actor
from core.renderers import JSONRenderer, Rendered
from pipelines import answers
from pipelines.models import (
    Execution,
    ExecutionAnswer,
    ExecutionStatus,
    Pipeline,
    TaskRun,
    TaskRunStatus,
    Trigger,
)
from pipelines.runner import run_task
from pipelines.services import execution_create, pipeline_update
from pipelines.tasks import maintenance_pass
from tests.factories import sql_pipeline, sql_task

# transaction=True: the engine sends task runs after its transactions commit.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("isolated_cache")]


def run(pipeline: Pipeline, sent: list[Any], **extra: Any) -> Execution:
    execution = execution_create(pipeline=pipeline, trigger=Trigger.MANUAL, **extra)
    while sent:
        run_task(str(sent.pop(0)))
    execution.refresh_from_db()
    return execution


@pytest.fixture
def finished(make_pipeline: Callable[..., Any], developer: Any, no_broker: list[Any]) -> Any:
    """A succeeded run, a failed one and an asset-triggered one (with ``triggered_by``)."""
    ok = make_pipeline(
        "ok",
        [
            sql_task("a", "CREATE TABLE IF NOT EXISTS t (x int)", outlets=["wh.t"]),
            sql_task("b", "INSERT INTO t VALUES (1)", depends_on=["a"]),
        ],
        user=developer,
    )
    bad = make_pipeline("bad", [sql_task("a", "SELECT * FROM no_such_table")], user=developer)
    make_pipeline("after", user=developer, schedule={"assets": ["wh.t"]})
    actor = Actor.of(developer)
    runs = [run(ok, no_broker, actor=actor), run(bad, no_broker, actor=actor)]
    (asset_run,) = Execution.objects.filter(trigger=Trigger.ASSET)
    asset_run.refresh_from_db()
    assert [r.status for r in runs] == ["success", "failed"]  # ok's event started "after"
    assert asset_run.status == "success" and asset_run.triggered_by.exists()
    return [*runs, asset_run]


def answer_of(execution: Execution) -> str | None:
    return ExecutionAnswer.objects.filter(pk=execution.pk).values_list("text", flat=True).first()


def api_json(client: Any, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def test_a_stored_answer_reads_exactly_as_the_live_one(
    finished: list[Execution], api_client_for: Any, developer: Any
) -> None:
    client = api_client_for(developer)
    live_list = api_json(client, "/api/v1/executions")["results"]
    live = {e.pk: api_json(client, f"/api/v1/executions/{e.pk}") for e in finished}
    assert ExecutionAnswer.objects.count() == 0

    stored, complete = answers.answers_store()
    assert (stored, complete) == (len(finished), True)
    assert ExecutionAnswer.objects.count() == Execution.objects.count()

    assert api_json(client, "/api/v1/executions")["results"] == live_list
    for execution in finished:
        assert api_json(client, f"/api/v1/executions/{execution.pk}") == live[execution.pk]
    asset_answer = live[finished[-1].pk]
    assert asset_answer["triggered_by"] and asset_answer["tasks"]


def test_a_list_of_stored_answers_reads_no_task_run(
    finished: list[Execution], api_client_for: Any, developer: Any
) -> None:
    answers.answers_store()
    client = api_client_for(developer)
    client.get("/api/v1/executions")  # the token's first check
    with CaptureQueriesContext(connection) as queries:
        body = api_json(client, "/api/v1/executions")
    assert len(body["results"]) == len(finished)
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert TaskRun._meta.db_table not in sql
    with CaptureQueriesContext(connection) as queries:
        api_json(client, f"/api/v1/executions/{finished[0].pk}")
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert TaskRun._meta.db_table not in sql


def test_a_renamed_pipeline_shows_its_new_name_in_stored_answers(
    finished: list[Execution], api_client_for: Any, developer: Any
) -> None:
    answers.answers_store()
    ok = Pipeline.objects.get(name="ok")
    data = sql_pipeline("ok_renamed", ok.definition["tasks"])
    pipeline_update(pipeline=ok, data=data, actor=Actor.of(developer))
    client = api_client_for(developer)
    names = {
        r["execution_id"]: r["pipeline_name"]
        for r in api_json(client, "/api/v1/executions")["results"]
    }
    assert names[str(finished[0].pk)] == "ok_renamed"
    detail = api_json(client, f"/api/v1/executions/{finished[0].pk}")
    assert detail["pipeline_name"] == "ok_renamed"
    assert detail["created_by"] == developer.username


def test_nothing_that_can_still_change_is_stored(
    finished: list[Execution], make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    pipeline = Pipeline.objects.get(name="bad")
    # Finished, but one task run not yet (a cancel still reaching its worker).
    racing = run(pipeline, no_broker)
    TaskRun.objects.filter(execution=racing).update(status=TaskRunStatus.RUNNING)
    active = execution_create(pipeline=pipeline, trigger=Trigger.MANUAL)
    no_broker.clear()  # queued, never run
    answers.answers_store()
    assert answer_of(active) is None
    assert answer_of(racing) is None
    assert all(answer_of(e) for e in finished)
    # Once its task run finished, the next pass stores it.
    TaskRun.objects.filter(execution=racing).update(status=TaskRunStatus.FAILED)
    assert answers.answers_store() == (1, True)


def test_an_answer_of_another_time_zone_is_rendered_live_and_reset_stores_it_again(
    finished: list[Execution], api_client_for: Any, developer: Any, settings: Any
) -> None:
    answers.answers_store()
    client = api_client_for(developer)
    execution = finished[0]
    utc = api_json(client, f"/api/v1/executions/{execution.pk}")
    assert utc["created_at"].endswith("Z")
    settings.TIME_ZONE = "Asia/Kolkata"
    kolkata = api_json(client, f"/api/v1/executions/{execution.pk}")
    assert kolkata["created_at"].endswith("+05:30")
    assert kolkata["tasks"][0]["started_at"].endswith("+05:30")
    listed = api_json(client, "/api/v1/executions")["results"]
    assert all(r["created_at"].endswith("+05:30") for r in listed)
    assert answer_of(execution).startswith("1 UTC\n")

    call_command("answers", "--reset", stdout=io.StringIO())
    assert answer_of(execution).startswith("1 Asia/Kolkata\n")
    assert api_json(client, f"/api/v1/executions/{execution.pk}") == kolkata


def test_maintenance_stores_the_answers(finished: list[Execution]) -> None:
    maintenance_pass()
    assert all(answer_of(e) for e in finished)


def test_an_answer_orjson_cannot_write_is_rendered_live(
    finished: list[Execution], api_client_for: Any, developer: Any
) -> None:
    execution = finished[0]
    Execution.objects.filter(pk=execution.pk).update(metrics={"big": 2**70})
    answers.answers_store()
    assert answer_of(execution) is None  # not storable
    assert answer_of(finished[1])  # the others are
    detail = api_json(api_client_for(developer), f"/api/v1/executions/{execution.pk}")
    assert detail["execution_id"] == str(execution.pk)


def test_the_renderer_writes_rendered_json_as_it_is_and_falls_back_past_64_bits() -> None:
    renderer = JSONRenderer()
    raw = Rendered(b'{"a": [1, 2.0], "b": "\\u00e9"}')
    # Byte for byte: written as it is, not parsed and rendered again.
    assert renderer.render({"x": [raw, 2]}) == b'{"x":[{"a": [1, 2.0], "b": "\\u00e9"},2]}'
    assert renderer.render(raw) == raw.json
    # json.dumps's path: the same document, the rendered part read back.
    assert json.loads(renderer.render({"n": 2**70, "r": raw})) == {
        "n": 2**70,
        "r": {"a": [1, 2.0], "b": "é"},
    }


def test_a_failed_answer_keeps_its_error(finished: list[Execution]) -> None:
    answers.answers_store()
    failed = Execution.objects.get(pk=finished[1].pk)
    assert failed.status == ExecutionStatus.FAILED
    body = json.loads(answer_of(failed).split("\n", 1)[1])
    assert body["error"] and body["tasks"][0]["error"]
    assert "pipeline_name" not in body and "created_by" not in body


def test_maintenance_goes_on_from_the_last_stored_answer_and_the_command_from_the_oldest(
    finished: list[Execution],
) -> None:
    first, *others = finished
    # first ended an hour before the others: past the overlap of the last stored end.
    Execution.objects.filter(pk=first.pk).update(ended_at=first.ended_at - timedelta(hours=1))
    answers.answers_store_batch([e.pk for e in others])
    assert answers.answers_store() == (0, True)
    assert answer_of(first) is None
    # A run that ended within the overlap is still found.
    Execution.objects.filter(pk=first.pk).update(
        ended_at=max(e.ended_at for e in others) - answers.OVERLAP / 2
    )
    assert answers.answers_store() == (1, True)
    ExecutionAnswer.objects.filter(pk=first.pk).delete()
    Execution.objects.filter(pk=first.pk).update(ended_at=first.ended_at - timedelta(hours=1))
    out = io.StringIO()
    call_command("answers", stdout=out)
    assert out.getvalue().startswith("stored 1 answers")
    assert answer_of(first)
