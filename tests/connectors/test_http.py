"""The http connector against a real local REST API (tests/rest_api.py), SPEC §8 and §10.

The server listens on loopback, which http connections may reach only when
OUTBOUND_ALLOW_NETWORKS lists it: tests that talk to it set the list.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.base import test_connection as try_connection
from connectors.http import HttpConnector
from pipelines.tasktypes.base import TaskCancelled
from tests.connectors.conftest import FakeContext
from tests.net import Listener, RebindingDns, self_signed
from tests.rest_api import RestApi, sample


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def api() -> Iterator[RestApi]:
    with RestApi(sample(7)) as server:
        yield server


def connector(base_url: str, **config: Any) -> HttpConnector:
    return HttpConnector(name="shop_api", config={"base_url": base_url, **config})


# ------------------------------------------------------------------ config


EX = "https://example.com"


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ({}, "base_url", "required"),
        ({"base_url": "ftp://example.com/"}, "base_url", "http:// or https://"),
        ({"base_url": "https://u:p@example.com/"}, "base_url", "user name"),
        ({"base_url": "https://example.com/?key=1"}, "base_url", "query"),
        ({"base_url": "https://example.com/\n"}, "base_url", "control"),
        ({"base_url": EX, "headers": ["x"]}, "headers", "object"),
        ({"base_url": EX, "headers": {"a b": "x"}}, "headers", "header name"),
        ({"base_url": EX, "headers": {"X-K": "a\r\nb"}}, "headers.X-K", "control"),
        ({"base_url": EX, "auth": {"type": "digest"}}, "auth", "bearer"),
        ({"base_url": EX, "auth": {"type": "bearer"}}, "auth.token", "non-empty"),
        (
            {"base_url": EX, "auth": {"type": "basic", "username": "u"}},
            "auth.password",
            "non-empty",
        ),
        ({"base_url": EX, "port": 1}, "port", "unknown"),
    ],
)
def test_it_names_what_is_wrong_in_a_config(config: dict[str, Any], key: str, words: str) -> None:
    problems = HttpConnector.validate_config(config)
    assert any(k == key and words in message for k, message in problems), problems


def test_a_header_problem_never_shows_the_header_value() -> None:
    problems = HttpConnector.validate_config(
        {"base_url": "https://example.com", "headers": {"X-Key": "s3cret\x00"}}
    )
    assert problems and "s3cret" not in repr(problems)


def test_loopback_is_refused_unless_the_allow_list_names_it(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = []
    problems = HttpConnector.validate_config({"base_url": "http://127.0.0.1:9/api"})
    assert problems == [
        (
            "base_url",
            "host '127.0.0.1' is refused: 127.0.0.1"
            " (loopback: http targets must be public or in OUTBOUND_ALLOW_NETWORKS)",
        )
    ]
    assert HttpConnector.validate_config({"base_url": "http://10.1.2.3/"})[0][0] == "base_url"
    metadata = {"base_url": "http://169.254.169.254/"}
    assert HttpConnector.validate_config(metadata)[0][0] == "base_url"
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    assert HttpConnector.validate_config({"base_url": "http://127.0.0.1:9/api"}) == []
    # Link-local stays refused whatever the allow list says.
    settings.OUTBOUND_ALLOW_NETWORKS = ["0.0.0.0/0"]
    assert HttpConnector.validate_config(metadata)


def test_a_refused_host_fails_at_run_time_before_any_request(settings: Any, api: RestApi) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = []
    result = try_connection(connector(api.base_url))
    assert result["ok"] is False
    assert "loopback" in result["error"] and "OUTBOUND_ALLOW_NETWORKS" in result["error"]
    assert api.requests == []


def test_the_endpoint_is_the_base_urls_scheme_host_and_port() -> None:
    endpoint = HttpConnector.endpoint
    assert endpoint({"base_url": "https://a.example.com/v1"}) == ("https", "a.example.com", 443)
    assert endpoint({"base_url": "https://a.example.com:443/v2"}) == endpoint(
        {"base_url": "https://a.example.com/v1"}
    )
    assert endpoint({"base_url": "http://a.example.com/v1"}) != endpoint(
        {"base_url": "https://a.example.com/v1"}
    )


# -------------------------------------------------------------- requests


def test_the_connection_test_gets_the_base_url_with_the_secrets(
    allow_loopback: None, api: RestApi
) -> None:
    api.token = "tok-123"
    result = try_connection(connector(api.base_url, auth={"type": "bearer", "token": "tok-123"}))
    assert result["ok"] is True, result
    assert api.requests[-1]["path"] == "/api"
    assert api.requests[-1]["headers"]["Authorization"] == "Bearer tok-123"


def test_a_wrong_token_is_an_authentication_failure_without_the_token(
    allow_loopback: None, api: RestApi
) -> None:
    api.token = "right"
    result = try_connection(connector(api.base_url, auth={"type": "bearer", "token": "wrong"}))
    error = "http 127.0.0.1: authentication failed (HTTP 401)"
    assert result == {"ok": False, "latency_ms": None, "error": error}


def test_headers_and_basic_auth_are_sent(allow_loopback: None, api: RestApi) -> None:
    c = connector(
        api.base_url,
        headers={"X-Api-Key": "k1"},
        auth={"type": "basic", "username": "ann", "password": "pw"},
    )
    with c.client() as client:
        assert client.get(c.url("/all"))[0]["id"] == 1
    sent = api.requests[-1]["headers"]
    assert sent["X-Api-Key"] == "k1"
    assert sent["Authorization"] == "Basic YW5uOnB3"  # ann:pw


def test_a_5xx_is_retried_with_backoff(allow_loopback: None, api: RestApi) -> None:
    api.failures["/api/all"] = [500, 503]
    c = connector(api.base_url)
    ctx = FakeContext({"name": "t"}, timeout=60)
    with c.client(ctx) as client:
        assert len(client.get(c.url("/all"))) == 7
    assert api.paths() == ["/api/all"] * 3
    waits = [m for _, m in ctx.logs if "retrying" in m]
    assert waits == [
        "http 127.0.0.1: HTTP 500; retrying in 1.0 s",
        "http 127.0.0.1: HTTP 503; retrying in 2.0 s",
    ]


def test_429_waits_for_retry_after(allow_loopback: None, api: RestApi) -> None:
    api.failures["/api/all"] = [429]
    api.retry_after = "3"
    c = connector(api.base_url)
    ctx = FakeContext({"name": "t"}, timeout=60)
    with c.client(ctx) as client:
        assert len(client.get(c.url("/all"))) == 7
    assert [m for _, m in ctx.logs] == ["http 127.0.0.1: HTTP 429; retrying in 3.0 s"]


def test_a_wait_past_the_timeout_fails_at_once(allow_loopback: None, api: RestApi) -> None:
    api.failures["/api/all"] = [429]
    api.retry_after = "120"
    c = connector(api.base_url)
    with c.client(FakeContext({"name": "t"}, timeout=30)) as client:
        with pytest.raises(ConnectorError, match="retrying in 120 s would pass the task's timeout"):
            client.get(c.url("/all"))
    assert api.paths() == ["/api/all"]


def test_a_cancel_stops_a_wait(allow_loopback: None, api: RestApi) -> None:
    api.failures["/api/all"] = [429]
    api.retry_after = "60"
    c = connector(api.base_url)
    ctx = FakeContext({"name": "t"}, timeout=600, cancel_after_checks=4)
    with c.client(ctx) as client:
        with pytest.raises(TaskCancelled):
            client.get(c.url("/all"))
    assert api.paths() == ["/api/all"]


def test_failures_that_last_fail_the_request(allow_loopback: None, api: RestApi) -> None:
    api.failures["/api/all"] = [500, 500]
    c = connector(api.base_url)
    with c.client(FakeContext({"name": "t"})) as client:
        with pytest.raises(ConnectorError, match="HTTP 500 after 2 attempts") as caught:
            client.get(c.url("/all"), attempts=2)
    assert caught.value.transient


def test_a_connection_error_is_retried_then_named(allow_loopback: None) -> None:
    closed = Listener()
    port = closed.port
    closed.close()  # nothing listens there now
    c = connector(f"http://127.0.0.1:{port}/api")
    with c.client(FakeContext({"name": "t"})) as client:
        with pytest.raises(ConnectorError, match="connection refused"):
            client.get(c.url("/all"), attempts=2)


def test_redirects_stay_on_the_base_urls_origin(allow_loopback: None, api: RestApi) -> None:
    c = connector(api.base_url)
    with c.client() as client:
        assert len(client.get(c.url("/hop"))) == 7
        with pytest.raises(ConnectorError, match="http://example.com:80 is not the base URL's"):
            client.get(c.url("/leave"))
        other = f"http://127.0.0.2:{api.port}/api/all"
        with pytest.raises(ConnectorError, match="not the base URL's scheme, host and port"):
            client.get(c.url(f"/leave?to={other}"))
        with pytest.raises(ConnectorError, match="refused"):
            client.get(other)


def test_it_connects_only_to_the_checked_address_when_dns_rebinds(
    allow_loopback: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RestApi(sample(2)) as api:
        try:
            evil = Listener("127.0.0.2", api.port)
        except OSError as exc:
            pytest.skip(f"cannot listen on 127.0.0.2:{api.port}: {exc}")
        try:
            dns = RebindingDns(monkeypatch, "api.rebind.test", ["127.0.0.1", "127.0.0.2"])
            c = connector(f"http://api.rebind.test:{api.port}/api")
            with c.client() as client:
                for _ in range(3):  # new connections too: the pool's, and after a close
                    assert len(client.get(c.url("/all"))) == 2
            assert dns.lookups == 1
            # The Host header keeps the name.
            assert api.requests[-1]["headers"]["Host"] == f"api.rebind.test:{api.port}"
            assert evil.accepted == []
        finally:
            evil.close()


def test_an_error_status_is_named(allow_loopback: None, api: RestApi) -> None:
    c = connector(api.base_url)
    with c.client() as client:
        with pytest.raises(ConnectorError, match=r"not found \(HTTP 404\)"):
            client.get(c.url("/nothing-here"))


def test_https_goes_to_the_checked_address_and_verifies_the_name(
    allow_loopback: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A certificate for the name only: it verifies only if TLS checks the
    # URL's name while the socket goes to the checked address.
    cert, key = self_signed(tmp_path, "api.rebind.test")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment]
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client's trust store
    with RestApi(sample(2), tls=server_tls) as api:
        dns = RebindingDns(monkeypatch, "api.rebind.test", ["127.0.0.1", "127.0.0.2"])
        c = connector(f"https://api.rebind.test:{api.port}/api")
        with c.client() as client:
            assert len(client.get(c.url("/all"))) == 2
        assert dns.lookups == 1 and names == ["api.rebind.test"]
        # abort() (a cancel hook) ends a TLS request in flight.
        RebindingDns(monkeypatch, "api.rebind.test", ["127.0.0.1"])
        with c.client() as client:
            timer = threading.Timer(0.3, client.abort)
            timer.start()
            with pytest.raises(ConnectorError, match="could not connect"):
                client.get(c.url("/slow"), attempts=1)
            timer.join()
        assert not api.slow_answered.is_set()
        # Another name on the same address: the certificate does not match.
        RebindingDns(monkeypatch, "other.rebind.test", ["127.0.0.1"])
        result = try_connection(connector(f"https://other.rebind.test:{api.port}/api"))
        assert result["error"] == "http other.rebind.test: TLS certificate verification failed"
        assert len(api.requests) == 2


def test_a_body_that_is_not_json_or_does_not_decode_is_named(
    allow_loopback: None, api: RestApi
) -> None:
    c = connector(api.base_url)
    with c.client() as client:
        with pytest.raises(ConnectorError, match=r"^http 127.0.0.1: the answer is not JSON$"):
            client.get(c.url("/text"))
        with pytest.raises(ConnectorError, match=r"^http 127.0.0.1: DecodingError$"):
            client.get(c.url("/badgzip"))
