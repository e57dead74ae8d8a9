"""Webhook URLs in full only for users who may edit the pipeline (SPEC §10).

Slack's webhook URLs carry their token in the path. A viewer or operator the
pipeline is shared with sees scheme and host in every answer that holds a
definition (detail, list, versions); the owner, an edit share and admins
see the URL. Nobody can save the cut form back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.permissions import Level
from connectors.models import Connection
from tests.factories import share
from tests.webhook_tokens import CUT, TOKEN_1, TOKEN_2, URL_1, URL_2, alerting_pipeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]


@pytest.fixture
def alerting(make_pipeline: Callable[..., Any], developer: Any) -> Any:
    return alerting_pipeline(make_pipeline, developer)


def _bodies(client: Any, pipeline: Any) -> dict[str, Any]:
    """Every API answer that holds a definition of ``pipeline``."""
    answers = {
        "detail": client.get(f"/api/v1/pipelines/{pipeline.pk}"),
        "list": client.get("/api/v1/pipelines"),
        "versions": client.get(f"/api/v1/pipelines/{pipeline.pk}/versions"),
    }
    for name, response in answers.items():
        assert response.status_code == 200, (name, response.content)
    return answers


def _webhooks(answers: dict[str, Any]) -> dict[str, Any]:
    return {
        "detail": answers["detail"].json()["on_failure"]["webhook"],
        "list": [p["on_failure"]["webhook"] for p in answers["list"].json()["results"]],
        "versions": [
            v["definition"]["on_failure"]["webhook"] for v in answers["versions"].json()["results"]
        ],
    }


@pytest.mark.parametrize("level", [Level.VIEW, Level.OPERATE])
@pytest.mark.parametrize("role_user", ["viewer", "operator", "other_developer"])
def test_it_shows_users_who_may_not_edit_only_scheme_and_host(
    alerting: Any, api_client_for: Any, request: Any, role_user: str, level: Level
) -> None:
    user = request.getfixturevalue(role_user)
    share(alerting, user, level)
    answers = _bodies(api_client_for(user), alerting)
    assert _webhooks(answers) == {"detail": CUT, "list": [CUT], "versions": [CUT, CUT]}
    for response in answers.values():
        body = response.content.decode()
        assert TOKEN_1 not in body and TOKEN_2 not in body and "/services/" not in body


def test_it_shows_the_owner_an_edit_share_and_admins_the_full_url(
    alerting: Any, api_client_for: Any, developer: Any, other_developer: Any, admin_user: Any
) -> None:
    share(alerting, other_developer, Level.EDIT)
    for user in (developer, other_developer, admin_user):
        answers = _webhooks(_bodies(api_client_for(user), alerting))
        assert answers == {"detail": URL_2, "list": [URL_2], "versions": [URL_2, URL_1]}


def test_it_answers_a_mixed_list_per_pipeline(
    alerting: Any, api_client_for: Any, other_developer: Any, make_pipeline: Any
) -> None:
    # In one list, the caller's own pipeline in full, the one shared for view cut.
    share(alerting, other_developer, Level.VIEW)
    share(Connection.objects.get(name="wh"), other_developer, Level.OPERATE)  # may use it
    make_pipeline("mine", user=other_developer, on_failure={"webhook": URL_1})
    results = api_client_for(other_developer).get("/api/v1/pipelines").json()["results"]
    assert {p["name"]: p["on_failure"]["webhook"] for p in results} == {
        "alerting": CUT,
        "mine": URL_1,
    }


def test_it_refuses_the_cut_form_as_a_webhook_url(
    alerting: Any, api_client_for: Any, developer: Any
) -> None:
    response = api_client_for(developer).patch(
        f"/api/v1/pipelines/{alerting.pk}", {"on_failure": {"webhook": CUT}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "path": "on_failure.webhook",
            "message": f"'{CUT}' is a webhook URL with its path hidden; give the full URL",
        }
    ]
    alerting.refresh_from_db()
    assert alerting.definition["on_failure"]["webhook"] == URL_2


def test_it_keeps_the_url_when_an_edit_share_changes_something_else(
    alerting: Any, api_client_for: Any, other_developer: Any
) -> None:
    share(alerting, other_developer, Level.EDIT)
    client = api_client_for(other_developer)
    response = client.patch(
        f"/api/v1/pipelines/{alerting.pk}", {"description": "changed"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["on_failure"]["webhook"] == URL_2
    # A PUT of the pipeline exactly as the editor read it changes nothing.
    shown = client.get(f"/api/v1/pipelines/{alerting.pk}").json()
    response = client.put(f"/api/v1/pipelines/{alerting.pk}", shown, format="json")
    assert response.status_code == 200
    alerting.refresh_from_db()
    assert alerting.version == 3 and alerting.definition["on_failure"]["webhook"] == URL_2


def test_it_lets_no_operator_save_what_they_read(
    alerting: Any, api_client_for: Any, operator: Any
) -> None:
    share(alerting, operator, Level.OPERATE)
    client = api_client_for(operator)
    shown = client.get(f"/api/v1/pipelines/{alerting.pk}").json()
    assert shown["on_failure"]["webhook"] == CUT
    assert client.put(f"/api/v1/pipelines/{alerting.pk}", shown, format="json").status_code == 403
    patch = {"on_failure": shown["on_failure"]}
    response = client.patch(f"/api/v1/pipelines/{alerting.pk}", patch, format="json")
    assert response.status_code == 403
    alerting.refresh_from_db()
    assert alerting.version == 2 and alerting.definition["on_failure"]["webhook"] == URL_2


def test_it_decides_what_a_list_shows_in_a_fixed_number_of_queries(
    alerting: Any, api_client_for: Any, other_developer: Any, make_pipeline: Any, developer: Any
) -> None:
    # Whether each pipeline's webhook is shown in full depends on the caller's
    # sharing of it: read for the whole page at once.
    client = api_client_for(other_developer)
    share(alerting, other_developer, Level.VIEW)
    client.get("/api/v1/pipelines")  # warms Django's content type cache
    with CaptureQueriesContext(connection) as one:
        assert client.get("/api/v1/pipelines").status_code == 200
    for i in range(20):
        share(make_pipeline(f"more{i}", user=developer), other_developer, Level.VIEW)
    with CaptureQueriesContext(connection) as many:
        results = client.get("/api/v1/pipelines").json()["results"]
    assert len(results) == 21
    assert len(many.captured_queries) == len(one.captured_queries)
