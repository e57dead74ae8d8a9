"""``GET /executions`` by position: cursors, what ``count`` means, filters, visibility."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.utils import timezone

from accounts.permissions import Level
from accounts.services import sharing_set
from core.api import Cursor, cursor_encode
from pipelines import selectors
from pipelines.models import Execution, ExecutionStatus, Trigger
from pipelines.serializers import ExecutionSerializer, execution_data, execution_rows, task_run_rows
from tests.factories import make_execution
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]


def ids_of(body: dict[str, Any]) -> list[str]:
    return [e["execution_id"] for e in body["results"]]


def follow(client: Any, link: str) -> dict[str, Any]:
    """GET a next/previous link as the API gave it."""
    parts = urlsplit(link)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.content
    return dict(response.json())


def newest_first(executions: list[Execution]) -> list[str]:
    ordered = sorted(executions, key=lambda e: (e.created_at, str(e.pk)), reverse=True)
    return [str(e.pk) for e in ordered]


@pytest.fixture
def runs(owned: Any) -> list[Execution]:
    """Seven runs of ``owned``, a minute apart, two of them at the same instant."""
    made = [make_execution(owned, "success", ago=60 * (i + 1)) for i in range(7)]
    same = timezone.now() - timedelta(hours=1)
    Execution.objects.filter(pk__in=[made[2].pk, made[3].pk]).update(created_at=same)
    return list(Execution.objects.filter(pk__in=[e.pk for e in made]))


def test_it_walks_every_page_forward_and_back(
    api_client_for: Any, developer: Any, runs: list[Execution]
) -> None:
    client = api_client_for(developer)
    first = client.get(url("executions?page_size=3")).json()
    assert set(first) == {"count", "count_exact", "next", "previous", "results"}
    assert first["count"] == 7 and first["count_exact"] is True
    assert first["previous"] is None and first["next"]
    pages = [first]
    while pages[-1]["next"]:
        pages.append(follow(client, pages[-1]["next"]))
    assert [len(p["results"]) for p in pages] == [3, 3, 1]
    seen = [i for page in pages for i in ids_of(page)]
    assert seen == newest_first(runs)  # every run once, ties included
    assert pages[-1]["next"] is None
    # Back from the last page gives the same pages, newest first within each.
    back = follow(client, pages[-1]["previous"])
    assert ids_of(back) == ids_of(pages[1])
    assert ids_of(follow(client, back["previous"])) == ids_of(first)
    assert follow(client, back["previous"])["previous"] is None
    # A link keeps the filters and page size it was made with.
    query = parse_qs(urlsplit(first["next"]).query)
    assert query["page_size"] == ["3"] and "cursor" in query


def test_it_keeps_the_next_page_stable_while_runs_are_added(
    api_client_for: Any, developer: Any, owned: Any, runs: list[Execution]
) -> None:
    client = api_client_for(developer)
    first = client.get(url("executions?page_size=3")).json()
    expected_second = newest_first(runs)[3:6]
    for _ in range(4):  # newer than every listed run: an offset would shift by four
        make_execution(owned, "running", ago=1)
    assert ids_of(follow(client, first["next"])) == expected_second
    assert client.get(url("executions?page_size=3")).json()["count"] == 11


def test_it_keeps_filters_on_every_page(
    api_client_for: Any, developer: Any, owned: Any, make_pipeline: Any
) -> None:
    other = make_pipeline("p2", user=developer)
    failed = [make_execution(owned, "failed", ago=10 * (i + 1)) for i in range(3)]
    make_execution(owned, "success", ago=5)
    make_execution(other, "failed", ago=7)
    client = api_client_for(developer)
    body = client.get(url(f"executions?pipeline={owned.pk}&status=failed&page_size=2")).json()
    assert body["count"] == 3
    pages = [body, follow(client, body["next"])]
    assert [i for p in pages for i in ids_of(p)] == newest_first(failed)
    assert pages[1]["next"] is None
    by_name = client.get(url("executions?pipeline=p2&trigger=manual")).json()
    assert by_name["count"] == 1 and by_name["results"][0]["pipeline_name"] == "p2"
    until = (timezone.now() - timedelta(seconds=15)).isoformat()
    older = client.get(url("executions"), {"until": until, "status": "failed"}).json()
    assert ids_of(older) == newest_first(failed)[1:]


def test_it_refuses_a_cursor_it_did_not_make(
    api_client_for: Any, developer: Any, runs: list[Execution]
) -> None:
    client = api_client_for(developer)
    not_a_uuid = cursor_encode(Cursor(True, timezone.now(), "x"))
    for bad in ["garbage", "e30", not_a_uuid, "W10"]:
        assert_error(client.get(url(f"executions?cursor={bad}")), 400, "cursor")
    assert_error(client.get(url("executions?page=2")), 400, "page")  # no page numbers
    assert_error(client.get(url("executions?page_size=0")), 400, "page_size")
    assert_error(client.get(url("executions?page_size=201")), 400, "page_size")


def test_it_lists_only_the_runs_a_user_may_see_on_every_page(
    api_client_for: Any,
    developer: Any,
    other_developer: Any,
    viewer: Any,
    make_pipeline: Any,
    sqlite_connection: Any,
) -> None:
    mine = make_pipeline("mine", user=developer)
    sqlite_connection("wh2", "wh2.sqlite", user=other_developer)
    tasks = [{"name": "t", "type": "sql", "connection": "wh2", "sql": "SELECT 1"}]
    theirs = make_pipeline("theirs", tasks=tasks, user=other_developer)
    shared = make_pipeline("shared", tasks=tasks, user=other_developer)
    sharing_set(obj=shared, users={developer: Level.VIEW}, groups={})
    expected = [make_execution(mine, ago=i + 1) for i in range(3)]
    expected += [make_execution(shared, ago=i + 10) for i in range(2)]
    hidden = [make_execution(theirs, ago=i + 1) for i in range(4)]
    client = api_client_for(developer)
    pages = [client.get(url("executions?page_size=2")).json()]
    while pages[-1]["next"]:
        pages.append(follow(client, pages[-1]["next"]))
    assert [i for p in pages for i in ids_of(p)] == newest_first(expected)
    assert pages[0]["count"] == 5
    # A cursor made from a hidden run shows nothing of it or its pipeline.
    cursor = cursor_encode(
        Cursor(True, hidden[0].created_at + timedelta(days=1), str(hidden[0].pk))
    )
    body = client.get(url(f"executions?cursor={cursor}&pipeline=theirs")).json()
    assert body["results"] == [] and body["count"] == 0
    nobody = api_client_for(viewer).get(url("executions")).json()
    assert nobody["count"] == 0 and nobody["results"] == [] and nobody["next"] is None


def without_live_duration(data: dict[str, Any]) -> dict[str, Any]:
    """An unfinished execution's duration grows between two renderings: leave it out."""
    if data["status"] not in {"queued", "running", "cancelling"}:
        return dict(data)
    return {
        **data,
        "metrics": {k: v for k, v in data["metrics"].items() if k != "duration_seconds"},
    }


def test_it_renders_rows_exactly_as_the_serializer_does(
    owned: Any, developer: Any, api_client_for: Any
) -> None:
    finished = make_execution(
        owned, "failed", error="t2: boom", tasks={"t1": "success", "t2": "failed"}
    )
    running = make_execution(owned, "running", tasks={"t1": "running"})
    rerun = make_execution(owned, "queued")
    Execution.objects.filter(pk=rerun.pk).update(
        rerun_of=finished, created_by=developer, trigger=Trigger.RERUN, parameters={"a": [1]}
    )
    rows = list(execution_rows(Execution.objects.order_by("created_at")))
    tasks = task_run_rows([row["execution_id"] for row in rows])
    client = api_client_for(developer)
    for row in rows:
        model = Execution.objects.select_related("pipeline", "version", "created_by").get(
            pk=row["execution_id"]
        )
        expected = without_live_duration(ExecutionSerializer(model).data)
        answer = client.get(url(f"executions/{model.pk}")).json()
        assert without_live_duration(answer) == expected
        # The row's part; the view adds what other tables hold (triggered_by).
        row_part = without_live_duration(execution_data(row, tasks[model.pk]))
        assert row_part == {k: v for k, v in expected.items() if k in row_part}
        assert set(expected) - set(row_part) <= {"triggered_by"}
    assert {str(e.pk) for e in (finished, running, rerun)} == {str(r["execution_id"]) for r in rows}


def test_it_counts_exactly_up_to_the_limit(owned: Any, monkeypatch: Any) -> None:
    for i in range(4):
        make_execution(owned, ago=i + 1)
    monkeypatch.setattr(selectors, "COUNT_EXACT_LIMIT", 4)
    assert selectors.count_bounded(Execution.objects.all()) == (4, True)
    assert selectors.count_bounded(Execution.objects.filter(status="failed")) == (0, True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the estimate is PostgreSQL's")
def test_it_estimates_past_the_limit_and_says_so(
    owned: Any, developer: Any, api_client_for: Any, monkeypatch: Any
) -> None:
    for i in range(6):
        make_execution(owned, ago=i + 1)
    monkeypatch.setattr(selectors, "COUNT_EXACT_LIMIT", 4)
    count, exact = selectors.count_bounded(Execution.objects.all())
    assert exact is False and count >= 5  # never below the limit it passed
    body = api_client_for(developer).get(url("executions")).json()
    assert body["count_exact"] is False and body["count"] >= 5
    assert len(body["results"]) == 6  # the rows themselves are all there
    small = api_client_for(developer).get(url("executions?status=failed")).json()
    assert small == {**small, "count": 0, "count_exact": True}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the estimate is PostgreSQL's")
def test_an_estimate_well_past_the_limit_is_kept_a_few_seconds(
    owned: Any, monkeypatch: Any, django_assert_num_queries: Any
) -> None:
    for i in range(3):
        make_execution(owned, ago=i + 1)
    monkeypatch.setattr(selectors, "_estimates", {})
    monkeypatch.setattr(selectors, "COUNT_EXACT_LIMIT", 0)  # every estimate is well past it
    runs = Execution.objects.filter(pipeline=owned)
    with django_assert_num_queries(2):  # the bounded count, then the planner's estimate
        count, exact = selectors.count_bounded(runs)
    assert exact is False and count >= 1
    with django_assert_num_queries(0):
        assert selectors.count_bounded(runs) == (count, False)
    with django_assert_num_queries(2):  # another query: its own estimate
        selectors.count_bounded(runs.filter(status="success"))
    monkeypatch.setattr(selectors, "ESTIMATE_SECONDS", 0.0)
    with django_assert_num_queries(2):  # expired
        selectors.count_bounded(runs)


def test_it_counts_exactly_on_other_databases(owned: Any, monkeypatch: Any) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL estimates past the limit (test above)")
    for i in range(6):
        make_execution(owned, ago=i + 1)
    monkeypatch.setattr(selectors, "COUNT_EXACT_LIMIT", 4)
    assert selectors.count_bounded(Execution.objects.all()) == (6, True)


def test_it_lists_runs_in_four_queries_whatever_the_page(
    many_executions: Any, admin_user: Any, api_client_for: Any, django_assert_max_num_queries: Any
) -> None:
    client = api_client_for(admin_user)
    client.get(url("executions"))  # the user's state is cached from here on
    first = client.get(url("executions?page_size=200")).json()
    # The page's rows, their task runs, the count (and its estimate on PostgreSQL).
    with django_assert_max_num_queries(4):
        body = follow(client, first["next"])
    assert len(body["results"]) == 200
    assert body["results"][0]["status"] in {s.value for s in ExecutionStatus}


def test_it_answers_a_non_admin_in_bounded_queries(
    many_executions: Any,
    developer: Any,
    api_client_for: Any,
    django_assert_max_num_queries: Any,
) -> None:
    client = api_client_for(developer)
    client.get(url("executions"))  # the user's state is cached from here on
    execution = many_executions[500]
    # The visible pipelines' ids, then as for an admin.
    with django_assert_max_num_queries(5):
        assert len(client.get(url("executions?page_size=100")).json()["results"]) == 100
    # The row joined to its task runs, whether its pipeline is visible.
    with django_assert_max_num_queries(2):
        status = client.get(url(f"executions/{execution.pk}/status"))
    assert status.json()["status"] == execution.status
