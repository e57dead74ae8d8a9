"""What one process writes, a new process reads back (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.services import connection_create
from pipelines.services import pipeline_update
from tests.workers import database_url_of_tests

BASE = Path(__file__).resolve().parent.parent

READ_BACK = """
import json
from pipelines.models import Pipeline
from connectors.models import Connection
p = Pipeline.objects.get(name="persisted")
c = Connection.objects.get(name="pgsecret")
print(json.dumps({
    "versions": list(p.versions.order_by("version").values_list("version", flat=True)),
    "description": p.definition["description"],
    "password": c.full_config()["password"],
}))
"""


@pytest.mark.django_db(transaction=True)
def test_it_reads_back_pipelines_versions_and_connections_in_a_new_process(
    make_pipeline: Any, settings: Any
) -> None:
    pipeline = make_pipeline("persisted")
    pipeline_update(pipeline=pipeline, data={**pipeline.definition, "description": "v2"})
    connection_create(
        name="pgsecret",
        kind="postgresql",
        config={"host": "db.example", "database": "x", "username": "u", "password": "s3cret-pw"},
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_tests(),
        "SECRET_KEY": settings.SECRET_KEY,
        "FERNET_KEYS": ",".join(settings.FERNET_KEYS),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", READ_BACK],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data == {"versions": [1, 2], "description": "v2", "password": "s3cret-pw"}


def test_it_has_no_missing_migrations() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_migrates_an_empty_postgresql_database(tmp_path: Path) -> None:
    from tests.services import scratch_postgres_db

    with scratch_postgres_db() as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": "persistence-test-" + "m" * 40,
            "FERNET_KEYS": "Qz3ZyT0Jr9pQyQm3W1nQ8sY2v2yKz4T7m8Xo5yq2b1E=",
            "DATADOG_VAR_DIR": str(tmp_path),
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=BASE,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
