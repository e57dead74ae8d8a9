"""The workflow of the product's origin document, end to end on real workers.

Log in with form data → create a pipeline (201, ``pipeline_id``) → execute
(200, ``execution_id``) → poll ``/executions/{id}/status``: the status is
always one of queued|running|success, and it reaches success.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import PASSWORD
from tests.http import url

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("isolated_cache"),
]


def test_it_runs_the_origin_workflow(
    workers: Any, developer: Any, settings: Any, tmp_path: Any
) -> None:
    settings.DATA_ROOT = tmp_path
    client = APIClient()
    login = client.post(
        url("auth/token"),
        f"username=dev1&password={PASSWORD}",
        content_type="application/x-www-form-urlencoded",
    )
    assert login.status_code == 200, login.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['access_token']}")

    connection = client.post(
        url("connections"),
        {"name": "wh", "kind": "sqlite", "config": {"path": "wh.sqlite"}},
        format="json",
    )
    assert connection.status_code == 201, connection.content
    created = client.post(
        url("pipelines"),
        {
            "name": "origin",
            "tasks": [
                {
                    "name": "make",
                    "type": "sql",
                    "connection": "wh",
                    "sql": "CREATE TABLE IF NOT EXISTS t (x INTEGER)",
                },
                {
                    "name": "fill",
                    "type": "sql",
                    "connection": "wh",
                    "sql": "INSERT INTO t VALUES (1)",
                    "depends_on": ["make"],
                },
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    pipeline_id = created.json()["pipeline_id"]

    workers(workers=2)
    executed = client.post(url(f"pipelines/{pipeline_id}/execute"), {}, format="json")
    assert executed.status_code == 200, executed.content
    execution_id = executed.json()["execution_id"]

    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = client.get(url(f"executions/{execution_id}/status"))
        assert status.status_code == 200
        body = status.json()
        assert body["status"] in {"queued", "running", "success"}, body
        seen.append(body["status"])
        if body["status"] == "success":
            break
        time.sleep(0.3)
    assert seen[-1] == "success", seen
    assert body["tasks"] == {"make": "success", "fill": "success"}
    detail = client.get(url(f"executions/{execution_id}")).json()
    assert detail["metrics"]["tasks_completed"] == 2
