"""http connections through the API and the form: secrets never shown, host policy (SPEC §10)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from connectors.models import Connection
from tests.http import assert_error, url
from tests.rest_api import RestApi, sample

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]

TOKEN = "tok-Plaintext-9Zq"
KEY = "key-Plaintext-4Rt"


@pytest.fixture
def api() -> Iterator[RestApi]:
    with RestApi(sample(3)) as server:
        yield server


def body(base_url: str, **config: Any) -> dict[str, Any]:
    return {
        "name": "shop_api",
        "kind": "http",
        "config": {
            "base_url": base_url,
            "headers": {"X-Api-Key": KEY},
            "auth": {"type": "bearer", "token": TOKEN},
            **config,
        },
    }


def test_loopback_is_a_400_on_config_base_url_unless_allowed(
    api_client_for: Any, developer: Any, settings: Any, api: RestApi
) -> None:
    dev = api_client_for(developer)
    settings.OUTBOUND_ALLOW_NETWORKS = []
    refused = dev.post(url("connections"), body(api.base_url), format="json")
    errors = assert_error(refused, 400, "config.base_url")["errors"]
    assert "loopback" in errors[0]["message"]
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    created = dev.post(url("connections"), body(api.base_url), format="json")
    assert created.status_code == 201, created.content


def test_bad_headers_and_auth_are_400s_naming_the_key(api_client_for: Any, developer: Any) -> None:
    dev = api_client_for(developer)
    bad = body("https://api.example.com", headers={"X-Key": 5}, auth={"type": "bearer"})
    answer = dev.post(url("connections"), bad, format="json")
    paths = [e["path"] for e in assert_error(answer, 400)["errors"]]
    assert paths == ["config.headers.X-Key", "config.auth.token"]


def test_headers_and_auth_are_never_shown_and_work(
    api_client_for: Any,
    developer: Any,
    admin_user: Any,
    settings: Any,
    api: RestApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    api.token = TOKEN
    dev = api_client_for(developer)
    created = dev.post(url("connections"), body(api.base_url), format="json")
    assert created.status_code == 201, created.content
    shown = created.json()
    assert shown["config"] == {"base_url": api.base_url}
    assert shown["secrets_set"] == ["auth", "headers"]
    c = f"connections/{shown['id']}"
    answers = [created, dev.get(url(c)), dev.get(url("connections"))]
    tested = dev.post(url(f"{c}/test"))
    assert tested.json()["ok"] is True, tested.json()
    assert api.requests[-1]["headers"]["X-Api-Key"] == KEY
    # A change of the description keeps them; the next test still authenticates.
    answers.append(dev.patch(url(c), {"description": "shop"}, format="json"))
    answers.append(dev.post(url(f"{c}/test")))
    assert answers[-1].json()["ok"] is True
    # The form and the admin page.
    admin = api_client_for(admin_user)
    answers.append(admin.get(url("audit-events?page_size=200")))
    browser = Client()
    browser.force_login(admin_user)
    for page in (
        f"/connections/{shown['id']}",
        f"/admin/connectors/connection/{shown['id']}/change/",
    ):
        answers.append(browser.get(page))
        assert answers[-1].status_code == 200, page
    for answer in answers:
        text = answer.content.decode(errors="replace")
        assert TOKEN not in text and KEY not in text
    assert TOKEN not in caplog.text and KEY not in caplog.text
    stored = Connection.objects.get(pk=shown["id"])
    assert TOKEN not in stored.secrets and KEY not in repr(stored.config)


def test_another_host_drops_the_secrets_unless_sent_again(
    api_client_for: Any, developer: Any, settings: Any, api: RestApi
) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    dev = api_client_for(developer)
    cid = dev.post(url("connections"), body(api.base_url), format="json").json()["id"]
    c = f"connections/{cid}"
    # Same origin, another path: kept.
    same = dev.patch(url(c), {"config": {"base_url": api.base_url + "/v2"}}, format="json")
    assert same.json()["secrets_set"] == ["auth", "headers"]
    # Another host: dropped, so an editor cannot send the owner's token to their server.
    moved = dev.patch(
        url(c), {"config": {"base_url": f"http://127.0.0.2:{api.port}/api"}}, format="json"
    )
    assert moved.status_code == 200, moved.content
    assert moved.json()["secrets_set"] == []
    again = dev.patch(
        url(c),
        {"config": {"base_url": api.base_url, "auth": {"type": "bearer", "token": TOKEN}}},
        format="json",
    )
    assert again.json()["secrets_set"] == ["auth"]


def test_the_form_takes_headers_and_auth_as_json(
    client_for: Any, developer: Any, settings: Any, api: RestApi
) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    client = client_for(developer)
    page = client.get("/connections/new", {"kind": "http"}).content.decode()
    assert 'name="base_url"' in page and 'name="headers"' in page and 'name="auth"' in page
    bad = client.post(
        "/connections/new",
        {"kind": "http", "name": "shop_api", "base_url": api.base_url, "headers": "[1"},
    )
    assert bad.status_code == 400
    assert "must be a JSON object" in bad.content.decode()
    assert "[1" not in bad.content.decode().split('name="headers"')[1].split("</textarea>")[0]
    done = client.post(
        "/connections/new",
        {
            "kind": "http",
            "name": "shop_api",
            "base_url": api.base_url,
            "headers": json.dumps({"X-Api-Key": KEY}),
            "auth": json.dumps({"type": "bearer", "token": TOKEN}),
        },
    )
    assert done.status_code == 302, done.content.decode()[:2000]
    stored = Connection.objects.get(name="shop_api")
    assert stored.full_config()["headers"] == {"X-Api-Key": KEY}
    assert stored.secret_keys_set() == ["auth", "headers"]
    edit = client.get(f"/connections/{stored.pk}").content.decode()
    assert KEY not in edit and TOKEN not in edit and "Write-only: set" in edit
    assert "another scheme, host or port in the base URL clears it" in edit


def test_the_list_shows_the_base_url(
    client_for: Any, developer: Any, settings: Any, api: RestApi
) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    browser = client_for(developer)
    created = browser.post(
        "/connections/new", {"kind": "http", "name": "shop_api", "base_url": api.base_url}
    )
    assert created.status_code == 302
    page = browser.get("/connections").content.decode()
    assert f'<code class="small">{api.base_url}</code>' in page
