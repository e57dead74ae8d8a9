"""Backfill with a preview, a run's history (transitions, attempts) and bulk actions on runs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from accounts.actor import Actor
from accounts.models import AuditEvent
from accounts.permissions import Level
from connectors.models import Connection
from pipelines.models import Execution, Trigger
from pipelines.services import execution_create
from tests.factories import make_execution, share
from tests.http import HTMX
from tests.pipelines.inprocess import run_all

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------ backfill


def _backfill(
    client: Any,
    pipeline: Any,
    start: str,
    end: str,
    op: str,
    expect: str | None = None,
    **extra: Any,
) -> Any:
    data = {"backfill-start": start, "backfill-end": end, "op": op}
    if expect is not None:
        data["expect"] = expect
    return client.post(f"/pipelines/{pipeline.pk}/backfill", data, **extra)


def test_backfill_previews_then_creates_one_run_per_interval(
    owned: Any, developer: Any, client_for: Any, no_broker: list[Any]
) -> None:
    client = client_for(developer)
    page = client.get(f"/pipelines/{owned.pk}").content.decode()
    assert f'hx-get="/pipelines/{owned.pk}/backfill"' in page
    form = client.get(f"/pipelines/{owned.pk}/backfill", **HTMX).content.decode()
    assert "<html" not in form and 'name="backfill-start"' in form
    preview = _backfill(client, owned, "2026-01-01", "2026-01-05", "preview", **HTMX)
    body = preview.content.decode()
    assert preview.status_code == 200 and "<strong>5</strong> intervals" in body
    assert ">2026-01-01 02:00</time> → " in body and ">2026-01-05 02:00</time> → " in body
    assert ">2026-01-06 02:00</time></li>" in body  # the last interval's end
    assert "Create 5 runs" in body
    assert not Execution.objects.filter(trigger=Trigger.BACKFILL).exists()
    created = _backfill(client, owned, "2026-01-01", "2026-01-05", "create", **HTMX)
    assert created.status_code == 200 and created["HX-Redirect"] == "/runs?pipeline=p1"
    runs = Execution.objects.filter(pipeline=owned, trigger=Trigger.BACKFILL)
    starts = sorted(r.data_interval_start.day for r in runs)
    assert starts == [1, 2, 3, 4, 5]
    assert all(r.created_by == developer for r in runs)
    plain = _backfill(client, owned, "2026-02-01", "2026-02-01", "create")
    assert plain.status_code == 302 and plain["Location"] == "/runs?pipeline=p1"


def test_a_range_changed_after_its_preview_is_previewed_again(
    owned: Any, developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    preview = _backfill(client, owned, "2026-01-01", "2026-01-05", "preview").content.decode()
    expect = preview.split('name="expect" value="')[1].split('"')[0]
    assert expect == "5@2026-01-01T02:00:00+00:00"
    changed = _backfill(client, owned, "2026-01-01", "2026-01-09", "create", expect=expect)
    body = changed.content.decode()
    assert changed.status_code == 200 and "the range changed since its preview" in body
    assert "<strong>9</strong> intervals" in body and 'value="9@2026-01-01T02:00' in body
    assert not Execution.objects.filter(pipeline=owned).exists()
    same = _backfill(client, owned, "2026-01-01", "2026-01-05", "create", expect=expect)
    assert same.status_code == 302
    assert Execution.objects.filter(pipeline=owned).count() == 5


def test_a_long_preview_shows_the_first_intervals_and_the_last(
    owned: Any, developer: Any, client_for: Any
) -> None:
    answer = _backfill(client_for(developer), owned, "2025-01-01", "2025-12-31", "preview")
    body = answer.content.decode()
    assert "<strong>365</strong> intervals" in body and "334 more" in body
    assert "2025-12-31 02:00" in body and "2025-03-01 02:00" not in body


@pytest.mark.parametrize(
    "start,end,field,message",
    [
        ("yesterday", "2026-01-05", "start", "not a date (2026-01-31)"),
        ("2026-01-05", "2026-01-01", "end", "must not be before the start"),
        ("2020-01-01", "2026-01-01", "end", "more than 1000 intervals"),
        ("2026-01-01T03:00", "2026-01-01T04:00", "end", "no interval of the schedule starts"),
    ],
)
def test_bad_ranges_are_shown_on_their_fields(
    owned: Any, developer: Any, client_for: Any, start: str, end: str, field: str, message: str
) -> None:
    for op in ("preview", "create"):
        answer = _backfill(client_for(developer), owned, start, end, op, **HTMX)
        assert answer.status_code == 400
        body = answer.content.decode()
        assert f'id="id_backfill-{field}_error"' in body and message in body
    assert not Execution.objects.filter(pipeline=owned).exists()


def test_backfill_needs_operate_and_a_cron_schedule(
    owned: Any,
    developer: Any,
    viewer: Any,
    other_developer: Any,
    client_for: Any,
    make_pipeline: Any,
) -> None:
    assert (
        _backfill(client_for(other_developer), owned, "2026-01-01", "2026-01-02", "create")
    ).status_code == 404
    share(owned, viewer, Level.VIEW)
    refused = _backfill(client_for(viewer), owned, "2026-01-01", "2026-01-02", "create")
    assert refused.status_code == 403
    assert b"backfill" not in client_for(viewer).get(f"/pipelines/{owned.pk}").content.lower()
    manual = make_pipeline("manual_only", user=developer)
    assert f"/pipelines/{manual.pk}/backfill" not in (
        client_for(developer).get(f"/pipelines/{manual.pk}").content.decode()
    )
    answer = _backfill(client_for(developer), manual, "2026-01-01", "2026-01-02", "create")
    assert answer.status_code == 400 and b"needs a cron schedule" in answer.content
    assert not Execution.objects.exists()


# ------------------------------------------------------------------ history


FAILING = [
    {"name": "ok", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
    {
        "name": "broken",
        "type": "sql",
        "connection": "wh",
        "sql": "SELECT * FROM no_such_table",
        "depends_on": ["ok"],
    },
]


def test_the_history_shows_transitions_and_attempts_with_errors(
    developer: Any,
    viewer: Any,
    other_developer: Any,
    make_pipeline: Any,
    client_for: Any,
    no_broker: list[Any],
) -> None:
    pipeline = make_pipeline("fails", tasks=FAILING, user=developer)
    execution = execution_create(
        pipeline=pipeline, trigger=Trigger.MANUAL, actor=Actor.of(developer)
    )
    execution = run_all(execution, no_broker)
    assert execution.status == "failed"
    client = client_for(developer)
    page = client.get(f"/runs/{execution.pk}").content.decode()
    assert f'hx-get="/runs/{execution.pk}/history"' in page
    history = client.get(f"/runs/{execution.pk}/history", **HTMX).content.decode()
    assert "<html" not in history and "hx-trigger" not in history  # finished: no polling
    attempts = history.split('id="attempts"')[1].split("</table>")[0]
    assert attempts.count("<tr>") == 3  # header, ok #1, broken #1
    assert "no_such_table" in attempts and "s-failed" in attempts
    moves = history.split('id="transitions"')[1]
    assert 'data-to="running"' in moves and 'data-to="failed"' in moves
    assert "queued</span> → " in moves and "worker:" in moves
    one = client.get(f"/runs/{execution.pk}/history", {"task": "ok"}).content.decode()
    assert "<html" in one and "no_such_table" not in one.split('id="transitions"')[1]
    assert client_for(other_developer).get(f"/runs/{execution.pk}/history").status_code == 404
    share(pipeline, viewer, Level.VIEW)
    assert client_for(viewer).get(f"/runs/{execution.pk}/history").status_code == 200


def test_the_pages_stand_on_their_own_without_htmx(
    owned: Any, developer: Any, client_for: Any, no_broker: list[Any]
) -> None:
    client = client_for(developer)
    backfill = client.get(f"/pipelines/{owned.pk}/backfill").content.decode()
    assert "<html" in backfill and "<h1>Backfill p1</h1>" in backfill
    execution = execution_create(pipeline=owned, trigger=Trigger.MANUAL, actor=Actor.of(developer))
    history = client.get(f"/runs/{execution.pk}/history").content.decode()
    assert "<html" in history and 'data-to="queued"' in history
    # Active: the history polls itself while the run goes on.
    assert f'hx-get="/runs/{execution.pk}/history" hx-trigger="every 3s"' in history


def test_the_history_names_who_cancelled_and_why(
    owned: Any, developer: Any, client_for: Any, no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=owned, trigger=Trigger.MANUAL, actor=Actor.of(developer))
    client = client_for(developer)
    client.post(f"/runs/{execution.pk}/cancel")
    history = client.get(f"/runs/{execution.pk}/history", **HTMX).content.decode()
    moves = history.split('id="transitions"')[1]
    assert "user:dev1" in moves and "cancelled in the UI" in moves
    assert 'data-to="cancelling"' in moves


# ------------------------------------------------------------------ bulk actions


@pytest.fixture
def runs(owned: Any, other_developer: Any, developer: Any, make_pipeline: Any) -> dict[str, Any]:
    """Runs of every kind, and one of a pipeline the developer sees but may not operate."""
    share(Connection.objects.get(name="wh"), other_developer, Level.OPERATE)
    theirs = make_pipeline("theirs", user=other_developer)
    share(theirs, developer, Level.VIEW)
    return {
        "running": make_execution(owned, "running", tasks={"t1": "running"}),
        "failed": make_execution(owned, "failed", tasks={"t1": "success", "t2": "failed"}),
        "success": make_execution(owned, "success"),
        "theirs": make_execution(theirs, "running"),
        "unknown": uuid.uuid4(),
    }


def _results(body: str) -> dict[str, str]:
    rows = body.split('id="bulk-results"')[1].split("<tr ")[1:]
    out = {}
    for row in rows:
        run = row.split('data-run="')[1].split('"')[0]
        out[run] = row.split('data-result="')[1].split('"')[0]
    return out


def test_bulk_cancel_asks_first_then_says_what_happened_to_each_run(
    runs: dict[str, Any], developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    listing = client.get("/runs").content.decode()
    assert 'id="bulk-form"' in listing
    assert f'value="{runs["running"].pk}" form="bulk-form"' in listing
    ids = [str(getattr(r, "pk", r)) for r in runs.values()]
    review = client.post("/runs/bulk", {"action": "cancel", "run": ids})
    assert review.status_code == 200
    expected = {
        str(runs["running"].pk): "will be done",
        str(runs["failed"].pk): "not in a state for that",
        str(runs["success"].pk): "not in a state for that",
        str(runs["theirs"].pk): "not allowed",
        str(runs["unknown"]): "not found",
    }
    assert _results(review.content.decode()) == expected
    assert Execution.objects.get(pk=runs["running"].pk).status == "running"
    done = client.post("/runs/bulk", {"action": "cancel", "run": ids, "confirm": "yes"})
    assert _results(done.content.decode()) == {**expected, str(runs["running"].pk): "done"}
    assert "1 of 5 runs done" in done.content.decode()
    assert Execution.objects.get(pk=runs["running"].pk).status in ("cancelling", "cancelled")
    assert Execution.objects.get(pk=runs["theirs"].pk).status == "running"
    cancelled = AuditEvent.objects.filter(action="cancel").values_list("details", flat=True)
    assert [d["execution_id"] for d in cancelled] == [str(runs["running"].pk)]
    again = client.post("/runs/bulk", {"action": "cancel", "run": ids[:1], "confirm": "yes"})
    assert _results(again.content.decode())[ids[0]] == "not in a state for that"


def test_bulk_rerun_failed_starts_new_runs_of_the_failed_ones(
    runs: dict[str, Any], developer: Any, client_for: Any, no_broker: list[Any]
) -> None:
    ids = [str(runs["failed"].pk), str(runs["success"].pk), str(runs["running"].pk)]
    answer = client_for(developer).post(
        "/runs/bulk", {"action": "rerun", "run": ids, "confirm": "yes"}
    )
    results = _results(answer.content.decode())
    assert results == {
        ids[0]: "done",
        ids[1]: "not in a state for that",
        ids[2]: "not in a state for that",
    }
    rerun = Execution.objects.get(rerun_of=runs["failed"])
    assert f"/runs/{rerun.pk}" in answer.content.decode()
    assert AuditEvent.objects.filter(action="execute", details__execution_id=str(rerun.pk)).exists()


@pytest.mark.parametrize(
    "data,path",
    [
        ({"action": "delete", "run": ["x"]}, "action"),
        ({"action": "cancel"}, "run"),
        ({"action": "cancel", "run": [str(uuid.uuid4()) for _ in range(101)]}, "run"),
    ],
)
def test_bulk_refuses_bad_input_naming_the_field(
    developer: Any, client_for: Any, data: dict[str, Any], path: str
) -> None:
    answer = client_for(developer).post("/runs/bulk", data)
    assert answer.status_code == 400 and f"{path}" in answer.content.decode()


def test_bulk_needs_a_post(developer: Any, client_for: Any) -> None:
    assert client_for(developer).get("/runs/bulk").status_code == 405
