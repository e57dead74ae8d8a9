"""Connection tests are bounded (SPEC §10, issue 10 item 6).

``connect_timeout`` at most 30 s, pool sizes capped, tests throttled per
user across the API and the UI, and failures told in fixed words: the text
of whatever answers on the host and port (a banner, a server's error) never
reaches the answer. The servers here are real sockets on loopback.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from django.test import Client

from connectors.postgresql import MAX_POOL_SIZE, PostgresqlConnector
from tests.fakeservers import FakeServer, banner, mysql_error, pg_error
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

BANNER = "BANNER-7f3e-secret-internal-build"
PG = {"host": "127.0.0.1", "port": 5432, "database": "shop", "username": "etl"}


def create(client: Any, kind: str, config: dict[str, Any], name: str = "target") -> Any:
    return client.post(
        url("connections"), {"name": name, "kind": kind, "config": config}, format="json"
    )


# ------------------------------------------------------------ validation


@pytest.mark.parametrize("timeout", [31, 600, 0, "10", True])
def test_it_answers_400_for_a_connect_timeout_outside_1_to_30(
    api_client_for: Any, developer: Any, timeout: Any
) -> None:
    answer = create(api_client_for(developer), "postgresql", {**PG, "connect_timeout": timeout})
    body = assert_error(answer, 400, "config.connect_timeout")
    assert "1-30" in str(body["errors"])


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"pool_max_size": 50}, "config.options.pool_max_size"),
        ({"pool_min_size": 0}, "config.options.pool_min_size"),
        ({"pool_min_size": 5, "pool_max_size": 2}, "config.options.pool_min_size"),
        ({"pool_max_size": "8"}, "config.options.pool_max_size"),
    ],
)
def test_it_answers_400_for_pool_sizes_outside_the_cap(
    api_client_for: Any, developer: Any, options: dict[str, Any], path: str
) -> None:
    assert_error(
        create(api_client_for(developer), "postgresql", {**PG, "options": options}), 400, path
    )


def test_it_accepts_the_limits_themselves(api_client_for: Any, developer: Any) -> None:
    config = {**PG, "connect_timeout": 30, "options": {"pool_min_size": 1, "pool_max_size": 10}}
    assert create(api_client_for(developer), "postgresql", config).status_code == 201


# ------------------------------------------------------- caps at connect


def test_it_caps_a_stored_timeout_and_pool_size_when_connecting() -> None:
    """A config stored before the limits (or by hand) is capped when it is used."""
    connector = PostgresqlConnector(
        name="big",
        config={
            **PG,
            "connect_timeout": 3600,
            "options": {"pool_min_size": 50, "pool_max_size": 500},
        },
    )
    assert connector.connect_kwargs()["connect_timeout"] == 30
    assert connector.pool_sizes() == (MAX_POOL_SIZE, MAX_POOL_SIZE)


def test_it_gives_up_on_a_silent_server_within_the_timeout(
    api_client_for: Any, developer: Any
) -> None:
    def silent(server: FakeServer, sock: socket.socket) -> None:
        server.drain(sock)  # accepts, reads, never answers

    with FakeServer(silent) as server:
        config = {**PG, "port": server.port, "connect_timeout": 2}
        cid = create(api_client_for(developer), "postgresql", config).json()["id"]
        started = time.monotonic()
        answer = api_client_for(developer).post(url(f"connections/{cid}/test")).json()
        elapsed = time.monotonic() - started
    assert answer["ok"] is False and answer["error"].endswith("timed out")
    assert elapsed < 10


# --------------------------------------------------------------- throttle


def test_it_throttles_tests_per_user_across_api_and_ui(
    api_client_for: Any, developer: Any, other_developer: Any, settings: Any, tmp_path: Any
) -> None:
    settings.DATA_ROOT = tmp_path
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**rates, "connection_test": "3/min"},
    }
    api = api_client_for(developer)
    cid = create(api, "sqlite", {"path": "t.db"}, name="lite").json()["id"]
    test_url = url(f"connections/{cid}/test")
    assert [api.post(test_url).status_code for _ in range(2)] == [200, 200]
    ui = Client()
    ui.force_login(developer)
    assert ui.post(f"/connections/{cid}/test").status_code == 200  # the third, through the UI
    refused = api.post(test_url)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    page = ui.post(f"/connections/{cid}/test")
    assert page.status_code == 429 and b"too many connection tests" in page.content
    # Another user has a counter of their own.
    other = create(api_client_for(other_developer), "sqlite", {"path": "u.db"}, name="lite2")
    other_test = url(f"connections/{other.json()['id']}/test")
    assert api_client_for(other_developer).post(other_test).status_code == 200


# -------------------------------------------------------- fixed words only


@pytest.mark.parametrize(
    ("kind", "handler", "phrase"),
    [
        ("postgresql", pg_error(BANNER), "could not connect"),
        ("postgresql", banner(f"SSH-2.0-OpenSSH_9.6 {BANNER}"), "could not connect"),
        ("mysql", mysql_error(BANNER), "the server does not allow this login"),
        ("mysql", banner(f"SSH-2.0-OpenSSH_9.6 {BANNER}"), "could not connect"),
    ],
)
def test_it_never_echoes_what_the_server_says(
    api_client_for: Any, developer: Any, kind: str, handler: Any, phrase: str
) -> None:
    client = api_client_for(developer)
    with FakeServer(handler) as server:
        # Without TLS, so the client reads the server's words as they come.
        config = {**PG, "port": server.port, "connect_timeout": 3, "sslmode": "disable"}
        cid = create(client, kind, config).json()["id"]
        answer = client.post(url(f"connections/{cid}/test"))
    assert "greeted" in server.events  # the server did say its words to the client
    assert answer.status_code == 200 and answer.json()["ok"] is False
    assert BANNER not in answer.content.decode() and "SSH-2.0" not in answer.content.decode()
    assert phrase in answer.json()["error"]


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_it_says_connection_refused_in_words(
    api_client_for: Any, developer: Any, kind: str
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = api_client_for(developer)
    cid = create(client, kind, {**PG, "port": port}).json()["id"]
    answer = client.post(url(f"connections/{cid}/test")).json()
    assert answer["error"] == f"{kind} 127.0.0.1:{port}/shop: connection refused"
