"""accounts.lockout: the counters the API token endpoint and the UI login share."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import RequestFactory

from accounts.lockout import (
    client_address,
    lockout_reset,
    login_check,
    login_failed,
    login_succeeded,
)
from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def isolated_cache(settings: Any) -> None:
    # Namespaced, never cleared: the cache may be shared with other test runs.
    caches = {name: dict(conf) for name, conf in django_settings.CACHES.items()}
    prefix = caches["default"].get("KEY_PREFIX", "")
    caches["default"]["KEY_PREFIX"] = f"{prefix}t{uuid.uuid4().hex[:8]}"
    settings.CACHES = caches
    settings.LOGIN_LOCKOUT_FAILURES = 3
    settings.LOGIN_LOCKOUT_IP_FAILURES = 5
    settings.LOGIN_LOCKOUT_SECONDS = 60


def request_from(address: str, forwarded: str | None = None) -> Any:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return RequestFactory().post("/login", REMOTE_ADDR=address, **extra)


def test_it_allows_until_the_limit_then_locks_the_pair() -> None:
    here = request_from("10.0.0.1")
    assert login_check(here, "alice") is None
    assert login_failed(here, "alice") is None
    assert login_failed(here, "alice") is None
    wait = login_failed(here, "alice")  # the third failure locks
    assert wait is not None and 0 < wait <= 60
    assert login_check(here, "alice") is not None
    assert login_check(here, "ALICE ") is not None  # same user, however typed
    assert login_check(request_from("10.0.0.2"), "alice") is None  # not from elsewhere
    assert login_check(here, "bob") is None


def test_it_locks_an_address_that_sprays_usernames() -> None:
    here = request_from("10.0.0.1")
    for i in range(5):
        login_failed(here, f"user{i}")
    assert login_check(here, "someone-else") is not None
    assert login_check(request_from("10.0.0.9"), "someone-else") is None


def test_it_forgets_the_pair_on_success_but_not_the_address(make_user: Any) -> None:
    alice = make_user("alice")
    here = request_from("10.0.0.1")
    login_failed(here, "alice")
    login_failed(here, "alice")
    login_succeeded(here, alice)
    login_failed(here, "alice")
    login_failed(here, "alice")
    assert login_check(here, "alice") is None  # the count started again
    login_failed(here, "bob")  # the address has 5 failures now
    assert login_check(here, "carol") is not None


def test_it_audits_every_attempt(make_user: Any) -> None:
    alice = make_user("alice")
    here = request_from("10.0.0.7")
    login_failed(here, "alice")
    login_succeeded(here, alice)
    for _ in range(3):
        login_failed(here, "alice")
    login_check(here, "alice")
    events = list(AuditEvent.objects.order_by("id").values_list("action", "actor_name", "ip"))
    assert events[0] == ("login_failed", "alice", "10.0.0.7")
    assert events[1] == ("login", "alice", "10.0.0.7")
    locked = AuditEvent.objects.order_by("id").last()
    assert locked is not None and locked.details["reason"] == "locked out"


def test_it_lifts_a_lock_on_reset() -> None:
    here = request_from("10.0.0.1")
    for _ in range(3):
        login_failed(here, "alice")
    lockout_reset(here, "alice")
    assert login_check(here, "alice") is None


def test_it_trusts_x_forwarded_for_only_behind_configured_proxies(settings: Any) -> None:
    forged = request_from("10.0.0.1", forwarded="1.2.3.4")
    assert client_address(forged) == "10.0.0.1"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert client_address(request_from("10.0.0.1", forwarded="6.6.6.6, 1.2.3.4")) == "1.2.3.4"
