"""The issue-10 attack end to end: a developer's sql task cannot reach the metadata database.

On the embedded default the metadata database is a SQLite file. A developer
creates a SQLite connection and a pipeline whose sql task attaches that file
and makes them superuser, then runs it through the API; the task runs in
this process exactly as a worker runs it (``runner.run_task``). The database
is transactional here so the metadata file really holds the committed rows
the attack would change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection as metadata

from pipelines import runner
from pipelines.models import Execution, ExecutionStatus
from tests.http import url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("isolated_cache", "no_broker"),
]


@pytest.fixture
def metadata_file() -> Path:
    if metadata.vendor != "sqlite":
        pytest.skip("the metadata database is not the embedded SQLite file")
    path = Path(metadata.settings_dict["NAME"])
    assert path.is_file(), path
    return path


@pytest.mark.parametrize("first", [[], ["COMMIT"]], ids=["in the transaction", "after COMMIT"])
def test_it_fails_the_run_and_keeps_the_developer_unprivileged(
    api_client_for: Any,
    developer: Any,
    settings: Any,
    tmp_path: Path,
    no_broker: list[Any],
    metadata_file: Path,
    first: list[str],
) -> None:
    settings.DATA_ROOT = tmp_path / "data"
    dev = api_client_for(developer)
    created = dev.post(
        url("connections"),
        {"name": "mine", "kind": "sqlite", "config": {"path": "mine.sqlite3"}},
        format="json",
    )
    assert created.status_code == 201, created.content
    attack = [
        *first,
        f"ATTACH DATABASE '{metadata_file}' AS m",
        "UPDATE m.auth_user SET is_superuser = 1, is_staff = 1 WHERE username = 'dev1'",
    ]
    pipeline = dev.post(
        url("pipelines"),
        {
            "name": "escalate",
            "tasks": [{"name": "t", "type": "sql", "connection": "mine", "sql": attack}],
        },
        format="json",
    )
    assert pipeline.status_code == 201, pipeline.content
    started = dev.post(
        url(f"pipelines/{pipeline.json()['pipeline_id']}/execute"), {}, format="json"
    )
    assert started.status_code == 200, started.content

    assert len(no_broker) == 1
    assert runner.run_task(str(no_broker[0])) == "failed"

    execution = Execution.objects.get(pk=started.json()["execution_id"])
    assert execution.status == ExecutionStatus.FAILED
    shown = dev.get(url(f"executions/{execution.pk}")).json()
    (task,) = shown["tasks"]
    assert "ATTACH and VACUUM are not allowed" in task["error"], task
    developer.refresh_from_db()
    assert developer.is_superuser is False
