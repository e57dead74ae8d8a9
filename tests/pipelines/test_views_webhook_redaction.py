"""Webhook URLs on the HTML pages and in the admin (SPEC §10).

Viewers and operators of a shared pipeline see scheme and host on its page,
its version diff and its runs; the owner sees the URL in the diff and the
editor. In the admin, a staff developer with a view share sees the cut form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.actor import Actor
from accounts.permissions import Level
from pipelines.services import pipeline_update
from tests.factories import make_execution, share
from tests.webhook_tokens import CUT, TOKEN_1, TOKEN_2, URL_1, URL_2, alerting_pipeline

pytestmark = pytest.mark.django_db

URL_3 = "https://alerts.example.invalid/hook/xoxT0KEN-third-555"


@pytest.fixture
def alerting(make_pipeline: Callable[..., Any], developer: Any) -> Any:
    return alerting_pipeline(make_pipeline, developer)


def _pages(client: Any, pipeline: Any) -> dict[str, str]:
    execution = make_execution(pipeline, "failed", error="boom")
    urls = {
        "page": f"/pipelines/{pipeline.pk}",
        "diff": f"/pipelines/{pipeline.pk}/diff?a=1&b=2",
        "run": f"/runs/{execution.pk}",
        "runs": "/runs",
    }
    pages = {}
    for name, url in urls.items():
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        pages[name] = response.content.decode()
    return pages


@pytest.mark.parametrize(
    ("role_user", "level"), [("viewer", Level.VIEW), ("operator", Level.OPERATE)]
)
def test_it_shows_viewers_and_operators_no_token(
    alerting: Any, client_for: Any, request: Any, role_user: str, level: Level
) -> None:
    user = request.getfixturevalue(role_user)
    share(alerting, user, level)
    pages = _pages(client_for(user), alerting)
    for name, body in pages.items():
        assert TOKEN_1 not in body and TOKEN_2 not in body, name
    # Only the hidden part changed from v1 to v2: nothing to show.
    assert "v1 and v2 are the same" in pages["diff"]
    # A change of host shows, cut on both sides.
    data = {**alerting.definition, "on_failure": {"webhook": URL_3}}
    pipeline_update(pipeline=alerting, data=data, actor=Actor.of(alerting.created_by))
    diff = client_for(user).get(f"/pipelines/{alerting.pk}/diff?a=2&b=3").content.decode()
    assert f"-  webhook: {CUT}" in diff
    assert "+  webhook: https://alerts.example.invalid/…" in diff
    assert TOKEN_2 not in diff and "xoxT0KEN-third" not in diff


def test_it_shows_the_owner_the_url_in_the_diff_and_the_editor(
    alerting: Any, client_for: Any, developer: Any
) -> None:
    client = client_for(developer)
    diff = client.get(f"/pipelines/{alerting.pk}/diff?a=1&b=2").content.decode()
    assert f"-  webhook: {URL_1}" in diff and f"+  webhook: {URL_2}" in diff
    editor = client.get(f"/pipelines/{alerting.pk}/edit").content.decode()
    assert URL_2 in editor


def test_it_shows_the_cut_url_in_the_admin_to_staff_who_may_not_change(
    alerting: Any, client_for: Any, other_developer: Any, developer: Any
) -> None:
    share(alerting, other_developer, Level.VIEW)
    version = alerting.versions.get(version=1)
    pages = {
        "pipeline": f"/admin/pipelines/pipeline/{alerting.pk}/change/",
        "version": f"/admin/pipelines/pipelineversion/{version.pk}/change/",
    }
    for name, url in pages.items():
        body = client_for(other_developer).get(url)
        assert body.status_code == 200, name
        text = body.content.decode()
        assert TOKEN_1 not in text and TOKEN_2 not in text, name
    version_page = client_for(other_developer).get(pages["version"]).content.decode()
    assert CUT in version_page
    # The owner may change it: the admin shows them the URL.
    owner_page = client_for(developer).get(pages["version"]).content.decode()
    assert URL_1 in owner_page
    assert URL_2 in client_for(developer).get(pages["pipeline"]).content.decode()
