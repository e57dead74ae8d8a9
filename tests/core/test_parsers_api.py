"""Bad input is a 400 with a path, never a 500: text no database stores, deep nesting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import sql_pipeline
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]


@pytest.fixture
def dev(api_client_for: Any, developer: Any, wh: Any) -> Any:
    return api_client_for(developer)


@pytest.mark.parametrize(
    ("path", "raw", "error_path"),
    [
        ("pipelines", '{"name": "p1", "description": "a\\u0000b", "tasks": []}', "description"),
        ("pipelines", '{"name": "p1", "tasks": [{"name": "\\ud800"}]}', "tasks[0].name"),
        (
            "connections",
            '{"name": "c", "kind": "csv", "config": {"path": "\\u0000"}}',
            "config.path",
        ),
        ("auth/refresh", '{"refresh_token": "\\u0000"}', "refresh_token"),
    ],
)
def test_it_refuses_text_no_database_can_store(
    dev: Any, path: str, raw: str, error_path: str
) -> None:
    response = dev.post(url(path), raw, content_type="application/json")
    assert_error(response, 400, error_path)


def test_it_refuses_nul_in_keys(dev: Any, pipeline_id: str) -> None:
    raw = '{"users": {"a\\u0000": "view"}, "groups": {"\\udbcb": "edit"}}'
    response = dev.put(
        url(f"pipelines/{pipeline_id}/permissions"), raw, content_type="application/json"
    )
    body = assert_error(response, 400)
    assert {e["path"] for e in body["errors"]} == {"users", "groups"}


def test_it_refuses_json_nested_too_deeply(dev: Any) -> None:
    raw = "[" * 100_000 + "]" * 100_000
    assert_error(dev.post(url("pipelines"), raw, content_type="application/json"), 400)


def test_it_refuses_nul_in_query_parameters(dev: Any) -> None:
    assert_error(dev.get(url("pipelines?search=a%00b")), 400, "search")
    assert_error(dev.get(url("connections?search=a%00b")), 400, "search")


def test_it_refuses_nul_in_form_logins(anon: Any, developer: Any) -> None:
    response = anon.post(
        url("auth/token"),
        "username=dev1%00&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert_error(response, 400, "username")


@pytest.fixture
def pipeline_id(dev: Any) -> str:
    response = dev.post(url("pipelines"), sql_pipeline("p1"), format="json")
    return str(response.json()["pipeline_id"])
