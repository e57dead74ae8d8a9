"""docker-compose.yml, run as the README says, without Docker (SPEC §11).

The services built from the project's image (migrate = bootstrap, web =
gunicorn with deploy/gunicorn.conf.py, worker = qcluster) start as processes
with the environment compose would give them (tests/deploy/compose.py) from
a ``.env`` made of ``.env.example`` with real secrets; a user opens the
documented URL over plain HTTP, logs in with the form, runs the demo
pipeline and sees it succeed, and /metrics counts it. The start refuses the
values of ``.env.example`` that must be changed, naming the variable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.conftest import DEMO_PIPELINE, DemoRun, query
from tests.deploy.stack import BASE, Stack, env_from_example
from tests.services import scratch_postgres_db

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


def test_the_readme_names_the_url_compose_serves() -> None:
    readme = (BASE / "README.md").read_text()
    production = readme.split("## Production", 1)[1].split("\n## ", 1)[0]
    assert "http://localhost:8000" in production
    compose = (BASE / "docker-compose.yml").read_text()
    assert '"8000:8000"' in compose
    assert "PUBLIC_URL=http://localhost:8000" in (BASE / ".env.example").read_text()


def test_a_user_logs_in_runs_the_demo_and_sees_it_succeed(demo_run: DemoRun) -> None:
    assert demo_run.status == "success", demo_run.stack.output("worker")
    page = demo_run.session.get(f"{demo_run.stack.url}/runs/{demo_run.execution_id}", timeout=10)
    assert page.status_code == 200 and "success" in page.text
    # It ran on the compose worker, against the compose database: not the embedded default.
    workers = query(
        demo_run.stack,
        "SELECT DISTINCT worker FROM pipelines_taskrun WHERE execution_id = %s",
        demo_run.execution_id,
    )
    assert workers and all(str(w).startswith("worker:") for (w,) in workers)
    sample = re.search(
        rf'^datadog_pipeline_executions_total\{{pipeline="{DEMO_PIPELINE}",status="success"\}} '
        r"(\S+)$",
        demo_run.metrics,
        re.M,
    )
    assert sample and float(sample.group(1)) == 1.0, demo_run.metrics[:3000]


def test_healthz_and_readyz_answer_over_the_documented_scheme(demo_run: DemoRun) -> None:
    for path in ("/healthz", "/readyz"):
        response = demo_run.session.get(
            f"{demo_run.stack.url}{path}", allow_redirects=False, timeout=10
        )
        assert response.status_code == 200, (path, response.text)


def _bootstrap(tmp_path: Path, **values: str) -> tuple[int, str]:
    env_file = env_from_example(tmp_path / "env", **values)
    with scratch_postgres_db() as url:
        stack = Stack(tmp_path, env_file, url.rsplit("/", 1)[1], redis_prefix="unused")
        result = stack.run("migrate")
    return result.returncode, (result.stdout + result.stderr).strip()


def test_the_start_refuses_env_example_as_it_is(tmp_path: Path) -> None:
    # `cp .env.example .env` and nothing else: bootstrap (every service waits
    # for it) stops with a message naming the variable to change.
    example = dict(
        line.split("=", 1)
        for line in (BASE / ".env.example").read_text().splitlines()
        if re.match(r"[A-Z_]+=", line)
    )
    secrets = {
        k: example[k]
        for k in (
            "SECRET_KEY",
            "FERNET_KEYS",
            "POSTGRES_PASSWORD",
            "GRAFANA_ADMIN_PASSWORD",
            "DATADOG_ADMIN_PASSWORD",
        )
    }
    code, output = _bootstrap(tmp_path, **secrets)
    assert code != 0
    last = output.splitlines()[-1]
    assert "ImproperlyConfigured: FERNET_KEYS: required" in last


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("SECRET_KEY", "change-me-to-50-random-characters-at-least-32-bytes-long", "SECRET_KEY"),
        ("POSTGRES_PASSWORD", "change-me", "DATABASE_URL"),
        ("GRAFANA_ADMIN_PASSWORD", "change-me", "GRAFANA_ADMIN_PASSWORD"),
        ("DATADOG_ADMIN_PASSWORD", "changeme", "DATADOG_ADMIN_PASSWORD"),
    ],
)
def test_the_start_refuses_each_published_value(
    tmp_path: Path, variable: str, value: str, named: str
) -> None:
    code, output = _bootstrap(tmp_path, **{variable: value})
    assert code != 0
    last = output.splitlines()[-1]
    assert f"{named}:" in last
    assert value not in last
