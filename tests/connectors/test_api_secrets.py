"""Connection secrets never appear in a response, log line, error, admin page or audit event.

Every surface is searched for the plaintext itself.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.core import serializers
from django.test import Client

from accounts.models import AuditEvent
from connectors.models import Connection
from tests.http import url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]

SECRET = "s3cr3t-Plaintext-7Hq"
PG = {
    "host": "127.0.0.1",
    "port": 1,  # nothing listens: the test endpoint fails and reports an error
    "database": "shop",
    "username": "reader",
    "password": SECRET,
}


def test_it_never_shows_a_secret_anywhere(
    api_client_for: Any,
    developer: Any,
    admin_user: Any,
    caplog: pytest.LogCaptureFixture,
    settings: Any,
    tmp_path: Any,
) -> None:
    settings.DATA_ROOT = tmp_path
    caplog.set_level(logging.DEBUG)
    dev = api_client_for(developer)
    admin = api_client_for(admin_user)
    bodies: list[str] = []

    def keep(response: Any) -> Any:
        bodies.append(response.content.decode(errors="replace"))
        return response

    created = keep(
        dev.post(
            url("connections"), {"name": "shop", "kind": "postgresql", "config": PG}, format="json"
        )
    )
    assert created.status_code == 201, created.content
    cid = created.json()["id"]
    c = f"connections/{cid}"
    keep(dev.get(url(c)))
    keep(dev.get(url("connections")))
    keep(admin.get(url("connections")))
    keep(dev.patch(url(c), {"config": {"database": "shop2"}}, format="json"))
    keep(dev.put(url(c), {"name": "shop", "kind": "postgresql", "config": PG}, format="json"))
    test = keep(dev.post(url(f"{c}/test")))
    assert test.json()["ok"] is False and test.json()["error"]
    keep(dev.get(url(f"{c}/permissions")))
    keep(dev.put(url(f"{c}/permissions"), {"users": {"admin1": "view"}}, format="json"))
    # Errors, with the secret in the request.
    bad_port = keep(dev.patch(url(c), {"config": {**PG, "port": "x"}}, format="json"))
    assert bad_port.status_code == 400
    unknown_key = keep(
        dev.patch(url(c), {"config": {"password": SECRET, "bogus": SECRET}}, format="json")
    )
    assert unknown_key.status_code == 400
    duplicate = keep(
        dev.post(
            url("connections"), {"name": "shop", "kind": "postgresql", "config": PG}, format="json"
        )
    )
    assert duplicate.status_code == 409
    bad_kind = keep(
        dev.post(url("connections"), {"name": "x", "kind": "oracle", "config": PG}, format="json")
    )
    assert bad_kind.status_code == 400
    wrong_type = keep(
        dev.post(
            url("connections"),
            {"name": "y", "kind": "postgresql", "config": {**PG, "password": [SECRET]}},
            format="json",
        )
    )
    assert wrong_type.status_code in {201, 400}
    keep(admin.get(url("audit-events?page_size=200")))

    # Admin pages.
    browser = Client()
    browser.force_login(admin_user)
    for path in [
        "/admin/connectors/connection/",
        f"/admin/connectors/connection/{cid}/change/",
        "/admin/accounts/auditevent/",
    ]:
        page = browser.get(path)
        assert page.status_code == 200, path
        bodies.append(page.content.decode(errors="replace"))

    for body in bodies:
        assert SECRET not in body, body[:2000]
    assert SECRET not in caplog.text
    events = serializers.serialize("json", AuditEvent.objects.all())
    assert SECRET not in events and SECRET not in json.dumps(
        list(AuditEvent.objects.values()), default=str
    )
    stored = Connection.objects.get(pk=cid)
    assert SECRET not in stored.secrets and SECRET not in json.dumps(stored.config)
    assert SECRET not in repr(stored) and SECRET not in str(stored)
