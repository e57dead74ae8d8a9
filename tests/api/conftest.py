"""Fixtures for API tests: clients authenticated by token, isolated throttles."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from accounts.tokens import token_pair


@pytest.fixture(autouse=True)
def isolated_cache(settings: Any) -> None:
    """A cache key prefix per test: throttle and lockout counters start at zero.

    The cache itself is shared with other test runs (Redis, or the file cache
    of the var dir), so it is never cleared, only namespaced.
    """
    caches = {name: dict(conf) for name, conf in django_settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = (
        f"{caches['default'].get('KEY_PREFIX', '')}t{uuid.uuid4().hex[:8]}"
    )
    settings.CACHES = caches


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for() -> Callable[[Any], APIClient]:
    """An APIClient sending a fresh bearer access token of ``user``."""

    def make(user: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair(user)['access_token']}")
        return client

    return make


@pytest.fixture
def wh(sqlite_connection: Callable[..., Any], developer: Any) -> Any:
    """The SQLite connection ``wh`` that pipelines of ``tests.conftest.sql_pipeline`` use."""
    return sqlite_connection("wh", "wh.sqlite", user=developer)
