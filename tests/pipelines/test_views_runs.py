"""Dashboard, runs list, run page (live fragment), cancel, rerun and task logs."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from accounts.permissions import Level
from pipelines.models import Execution, TaskLogLine
from tests.factories import make_execution, share
from tests.http import HTMX

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------ dashboard


def test_it_sums_up_runs_on_the_dashboard(owned: Any, developer: Any, client_for: Any) -> None:
    make_execution(owned, "success", ago=600)
    make_execution(
        owned, "failed", ago=300, error="t2: boom", tasks={"t1": "success", "t2": "failed"}
    )
    running = make_execution(owned, "running", ago=10, tasks={"t1": "running"})
    content = client_for(developer).get("/").content.decode()
    assert "50.0%" in content  # 1 success of 2 finished in 7 days
    assert "1 of 2 finished runs" in content
    assert f"/runs/{running.pk}" in content  # running now
    assert "t2: boom" in content  # recent failure with its error
    assert "Queue depth" in content


def test_it_counts_only_visible_runs_on_the_dashboard(
    owned: Any, other_developer: Any, client_for: Any
) -> None:
    make_execution(owned, "failed", error="secret failure")
    content = client_for(other_developer).get("/").content.decode()
    assert "secret failure" not in content
    assert "No failed runs" in content


def test_it_refreshes_the_dashboard_as_a_fragment(
    owned: Any, developer: Any, client_for: Any
) -> None:
    content = client_for(developer).get("/", **HTMX).content.decode()
    assert "<html" not in content and 'id="dashboard-live"' in content


def test_it_builds_the_dashboard_in_bounded_queries(
    many_executions: Any, developer: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(developer)
    with django_assert_max_num_queries(12):
        response = client.get("/")
    assert response.status_code == 200
    assert "finished runs" in response.content.decode()


# ------------------------------------------------------------------ runs list


def test_it_lists_and_filters_runs(
    owned: Any, developer: Any, other_developer: Any, client_for: Any
) -> None:
    ok = make_execution(owned, "success")
    bad = make_execution(owned, "failed")
    client = client_for(developer)
    content = client.get("/runs").content.decode()
    assert str(ok.pk)[:8] in content and str(bad.pk)[:8] in content
    failed_only = client.get("/runs", {"status": "failed"}).content.decode()
    assert str(bad.pk)[:8] in failed_only and str(ok.pk)[:8] not in failed_only
    assert str(ok.pk)[:8] not in client.get("/runs", {"pipeline": "zzz"}).content.decode()
    assert str(ok.pk)[:8] not in client_for(other_developer).get("/runs").content.decode()
    fragment = client.get("/runs", {"status": "failed"}, **HTMX).content.decode()
    assert "<html" not in fragment and 'id="run-results"' in fragment


def test_it_lists_runs_in_bounded_queries(
    many_executions: Any, developer: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(developer)
    with django_assert_max_num_queries(10):
        response = client.get("/runs", {"page": 3})
    assert response.status_code == 200
    assert "Page 3 of 40" in response.content.decode()


# ------------------------------------------------------------------ run page


def test_it_shows_a_run_to_its_owner(owned: Any, developer: Any, client_for: Any) -> None:
    execution = make_execution(
        owned, "failed", error="t2: no such table", tasks={"t1": "success", "t2": "failed"}
    )
    content = client_for(developer).get(f"/runs/{execution.pk}").content.decode()
    assert 'data-status="failed"' in content
    assert 'class="node s-success"' in content and 'class="node s-failed"' in content
    assert 'class="gantt"' in content and 'class="bar s-failed"' in content
    assert "boom: no such table" in content  # the task's error
    assert "Rerun failed tasks" in content and "Cancel run" not in content
    assert 'hx-trigger="every' not in content  # finished: no polling
    # t1 before t2 (graph order) in the task table.
    assert content.index('<tr data-task="t1">') < content.index('<tr data-task="t2">')


def test_it_polls_an_active_run_and_answers_htmx_with_the_live_fragment(
    owned: Any, developer: Any, client_for: Any
) -> None:
    execution = make_execution(owned, "running", tasks={"t1": "running"})
    client = client_for(developer)
    page = client.get(f"/runs/{execution.pk}").content.decode()
    assert f'hx-get="/runs/{execution.pk}" hx-trigger="every 1s"' in page
    assert "Cancel run" in page and "Rerun failed tasks" not in page
    fragment = client.get(f"/runs/{execution.pk}", **HTMX).content.decode()
    assert "<html" not in fragment and fragment.lstrip().startswith('<div id="run-live"')
    assert 'id="log-panel"' not in fragment  # the log panel is not replaced by the poll


def test_it_shows_a_shared_run_read_only(owned: Any, viewer: Any, client_for: Any) -> None:
    share(owned, viewer, Level.VIEW)
    execution = make_execution(owned, "running", tasks={"t1": "running"})
    content = client_for(viewer).get(f"/runs/{execution.pk}").content.decode()
    assert 'data-status="running"' in content
    assert "Cancel run" not in content and "Rerun" not in content


def test_it_hides_runs_from_outsiders(owned: Any, other_developer: Any, client_for: Any) -> None:
    execution = make_execution(owned, "running", tasks={"t1": "running"})
    client = client_for(other_developer)
    assert client.get(f"/runs/{execution.pk}").status_code == 404
    assert client.get(f"/runs/{execution.pk}/tasks/t1/log").status_code == 404
    assert client.post(f"/runs/{execution.pk}/cancel").status_code == 404
    assert client.post(f"/runs/{execution.pk}/rerun").status_code == 404


def test_it_shows_a_run_in_bounded_queries(
    many_executions: Any,
    owned: Any,
    developer: Any,
    client_for: Any,
    django_assert_max_num_queries: Any,
) -> None:
    execution = make_execution(owned, "failed", tasks={"t1": "success", "t2": "failed"})
    client = client_for(developer)
    with django_assert_max_num_queries(10):
        assert client.get(f"/runs/{execution.pk}").status_code == 200
    with django_assert_max_num_queries(10):
        assert client.get(f"/runs/{execution.pk}", **HTMX).status_code == 200


def test_it_shows_the_pipeline_page_in_bounded_queries(
    many_executions: Any,
    owned: Any,
    developer: Any,
    client_for: Any,
    django_assert_max_num_queries: Any,
) -> None:
    client = client_for(developer)
    with django_assert_max_num_queries(16):
        assert client.get(f"/pipelines/{owned.pk}").status_code == 200


# ------------------------------------------------------------------ cancel, rerun


def test_it_cancels_a_run(owned: Any, operator: Any, client_for: Any) -> None:
    share(owned, operator, Level.OPERATE)
    execution = make_execution(owned, "running", tasks={"t1": "running", "t2": "pending"})
    response = client_for(operator).post(f"/runs/{execution.pk}/cancel")
    assert response.status_code == 302 and response["Location"] == f"/runs/{execution.pk}"
    execution.refresh_from_db()
    assert execution.status in {"cancelling", "cancelled"}
    assert execution.tasks.get(task_name="t2").status == "cancelled"


def test_it_refuses_cancel_to_read_only_users(owned: Any, viewer: Any, client_for: Any) -> None:
    share(owned, viewer, Level.VIEW)
    execution = make_execution(owned, "running", tasks={"t1": "running"})
    assert client_for(viewer).post(f"/runs/{execution.pk}/cancel").status_code == 403
    execution.refresh_from_db()
    assert execution.status == "running"


def test_it_explains_a_cancel_of_a_finished_run(
    owned: Any, developer: Any, client_for: Any
) -> None:
    execution = make_execution(owned, "success")
    client = client_for(developer)
    response = client.post(f"/runs/{execution.pk}/cancel", follow=True)
    assert response.status_code == 200
    assert b"already success" in response.content


def test_it_reruns_failed_tasks(owned: Any, developer: Any, client_for: Any) -> None:
    execution = make_execution(owned, "failed", tasks={"t1": "success", "t2": "failed"})
    response = client_for(developer).post(f"/runs/{execution.pk}/rerun")
    new = Execution.objects.get(rerun_of=execution)
    assert response.status_code == 302 and response["Location"] == f"/runs/{new.pk}"
    assert new.tasks.get(task_name="t1").status == "skipped"


def test_it_reruns_from_a_task(owned: Any, developer: Any, client_for: Any) -> None:
    execution = make_execution(owned, "success")
    client_for(developer).post(f"/runs/{execution.pk}/rerun", {"from_task": "t2"})
    new = Execution.objects.get(rerun_of=execution)
    assert new.tasks.get(task_name="t1").status == "skipped"
    assert new.tasks.get(task_name="t2").status != "skipped"


def test_it_explains_a_rerun_that_cannot_be(owned: Any, developer: Any, client_for: Any) -> None:
    execution = make_execution(owned, "running", tasks={"t1": "running"})
    response = client_for(developer).post(f"/runs/{execution.pk}/rerun", follow=True)
    assert response.status_code == 200
    assert b"rerun needs a finished execution" in response.content


def test_it_refuses_rerun_to_read_only_users(owned: Any, viewer: Any, client_for: Any) -> None:
    share(owned, viewer, Level.VIEW)
    execution = make_execution(owned, "failed", tasks={"t1": "failed"})
    assert client_for(viewer).post(f"/runs/{execution.pk}/rerun").status_code == 403
    assert not Execution.objects.filter(rerun_of=execution).exists()


# ------------------------------------------------------------------ logs


def _log(task_run: Any, *messages: str, level: str = "INFO") -> None:
    start = task_run.log_lines.count()
    TaskLogLine.objects.bulk_create(
        [
            TaskLogLine(
                task_run=task_run,
                attempt=1,
                seq=start + i,
                at=timezone.now(),
                level=level,
                message=m,
            )
            for i, m in enumerate(messages)
        ]
    )


def test_it_shows_a_task_log(owned: Any, viewer: Any, client_for: Any) -> None:
    share(owned, viewer, Level.VIEW)  # logs are part of "view"
    execution = make_execution(owned, "failed", tasks={"t1": "success", "t2": "failed"})
    _log(execution.tasks.get(task_name="t2"), "started", "query failed", level="ERROR")
    client = client_for(viewer)
    page = client.get(f"/runs/{execution.pk}/tasks/t2/log")
    assert page.status_code == 200
    assert b"query failed" in page.content and b"boom: no such table" in page.content
    panel = client.get(f"/runs/{execution.pk}/tasks/t2/log", **HTMX).content.decode()
    assert "<html" not in panel and 'class="log"' in panel
    assert "following the log" not in panel  # finished: no tail


def test_it_tails_the_log_of_a_running_task(owned: Any, developer: Any, client_for: Any) -> None:
    execution = make_execution(owned, "running", tasks={"t1": "running"})
    task_run = execution.tasks.get(task_name="t1")
    _log(task_run, "line 0", "line 1")
    client = client_for(developer)
    panel = client.get(f"/runs/{execution.pk}/tasks/t1/log", **HTMX).content.decode()
    assert "line 1" in panel
    assert f'hx-get="/runs/{execution.pk}/tasks/t1/log?after=1"' in panel
    _log(task_run, "line 2")
    tail = client.get(f"/runs/{execution.pk}/tasks/t1/log", {"after": 1}, **HTMX).content.decode()
    assert "line 2" in tail and "line 1" not in tail
    assert "?after=2" in tail
    assert client.get(f"/runs/{execution.pk}/tasks/t1/log", {"after": "x"}).status_code == 404


def test_it_answers_404_for_an_unknown_task(owned: Any, developer: Any, client_for: Any) -> None:
    execution = make_execution(owned, "success")
    assert client_for(developer).get(f"/runs/{execution.pk}/tasks/nope/log").status_code == 404
