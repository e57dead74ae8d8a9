"""The compose stack as processes, shared by the smoke and monitoring tests (one start)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

import psycopg
import pytest
import redis
import requests

from tests.deploy.stack import ADMIN_PASSWORD, Stack, env_from_example, scratch_folder
from tests.services import need_redis, scratch_postgres_db, unique_name

DEMO_PIPELINE = "demo_orders_daily"


@pytest.fixture(scope="session")
def compose_stack() -> Iterator[Stack]:
    """bootstrap, then gunicorn web and a worker, from docker-compose.yml and .env.example."""
    redis_url = need_redis()
    folder = scratch_folder()
    prefix = unique_name("compose")
    with scratch_postgres_db() as database_url:
        stack = Stack(
            folder, env_from_example(folder), database_url.rsplit("/", 1)[1], redis_prefix=prefix
        )
        try:
            bootstrap = stack.run("migrate")
            assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
            assert "admin user 'admin' created from DATADOG_ADMIN_PASSWORD" in bootstrap.stdout
            # The README's `docker compose exec web python manage.py demo`.
            demo = stack.run("web", "python", "manage.py", "demo")
            assert demo.returncode == 0, demo.stdout + demo.stderr
            stack.start("web")
            stack.start("worker")
            stack.wait_web()
            yield stack
        finally:
            stack.stop()
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(f"*{prefix}*"))
            if keys:
                client.delete(*keys)
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class DemoRun:
    stack: Stack
    session: requests.Session
    execution_id: str
    status: str
    metrics: str


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class _FormFields(HTMLParser):
    """The inputs of the form with ``id="{form_id}"``, with the values a browser would send."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = attributes.get("id") == self.form_id
        elif self.inside and tag in {"input", "select", "textarea"} and "name" in attributes:
            if attributes.get("type") in {"checkbox", "radio"} and "checked" not in attributes:
                return
            self.fields[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def form_fields(html: str, form_id: str) -> dict[str, str]:
    parser = _FormFields(form_id)
    parser.feed(html)
    assert parser.fields, f"no form #{form_id} in the page"
    return parser.fields


def query(stack: Stack, sql: str, *params: object) -> list[tuple[object, ...]]:
    url = stack.environment("web")["DATABASE_URL"]
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


@pytest.fixture(scope="session")
def demo_run(compose_stack: Stack) -> DemoRun:
    """A user's visit: the login page, form login, Run on the demo pipeline, its end, /metrics."""
    stack = compose_stack
    session = requests.Session()
    page = session.get(f"{stack.url}/login", allow_redirects=False, timeout=10)
    # The documented scheme serves the page: no redirect to a scheme nothing serves.
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    login = session.post(
        f"{stack.url}/login",
        data={
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "csrfmiddlewaretoken": csrf_token(page.text),
        },
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 302, login.text[:2000]
    # The session cookie comes back over plain HTTP (not Secure-only).
    assert "sessionid" in session.cookies
    home = session.get(f"{stack.url}/", allow_redirects=False, timeout=10)
    assert home.status_code == 200, (home.status_code, home.headers.get("Location"))

    [(pipeline_id,)] = query(
        stack, "SELECT pipeline_id FROM pipelines_pipeline WHERE name = %s", DEMO_PIPELINE
    )
    detail = session.get(f"{stack.url}/pipelines/{pipeline_id}", timeout=10)
    assert detail.status_code == 200
    started = session.post(
        f"{stack.url}/pipelines/{pipeline_id}/run",
        data=form_fields(detail.text, "run-form"),
        headers={"Referer": f"{stack.url}/pipelines/{pipeline_id}"},
        allow_redirects=False,
        timeout=10,
    )
    assert started.status_code == 302, started.text[:2000]
    execution_id = started.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    deadline = time.monotonic() + 120
    status = ""
    while time.monotonic() < deadline:
        [(status,)] = query(
            stack,
            "SELECT status FROM pipelines_execution WHERE execution_id = %s",
            execution_id,
        )
        if status in {"success", "failed", "cancelled"}:
            break
        time.sleep(0.5)
    metrics = session.get(f"{stack.url}/metrics", timeout=20)
    assert metrics.status_code == 200
    return DemoRun(stack, session, execution_id, str(status), metrics.text)
