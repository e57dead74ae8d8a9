"""on_failure alerts: one Slack-compatible message per failed run, no secret in it."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from pipelines import alerts
from pipelines.models import Execution, TaskRun
from pipelines.services import execution_create, pipeline_create
from tests.factories import postgresql_connection
from tests.net import RebindingDns, self_signed
from tests.ops.conftest import same_prefix
from tests.services import need_postgres
from tests.workers import finished, wait_for

SECRET_PASSWORD = "hunter2-secret-pw"
HOOK_PATH = "/services/T000/B000/TOKENsecretpath"


class Receiver:
    """A local webhook receiver (127.0.0.1 by default); answers the queued status codes."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        address: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.hosts: list[str] = []  # the Host header of each request
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, body))
                receiver.hosts.append(str(self.headers.get("Host")))
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{HOOK_PATH}"

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


# Webhooks may not reach loopback (SPEC §10) unless the deployment allows it;
# the receivers of these tests listen on 127.0.0.1.
ALLOW_LOOPBACK = {"OUTBOUND_ALLOW_NETWORKS": "127.0.0.1/32"}


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts, "BACKOFF_SECONDS", (0.01, 0.01))
    monkeypatch.setattr(alerts, "HTTP_TIMEOUT_SECONDS", 2.0)


def _pg_connection() -> None:
    """A PostgreSQL connection with a password (the local server trusts, ignores it)."""
    postgresql_connection("pgsecret", need_postgres(), password=SECRET_PASSWORD)


@pytest.mark.worker
@pytest.mark.timeout(180)
@pytest.mark.usefixtures("loopback_allowed")
def test_it_posts_exactly_one_alert_per_failed_run_without_secrets(
    workers: Any, receiver: Receiver
) -> None:
    _pg_connection()
    on_failure = {"webhook": receiver.url}
    failing = pipeline_create(
        data={
            "name": "nightly",
            "on_failure": on_failure,
            "tasks": [
                {"name": "ok", "type": "sql", "connection": "pgsecret", "sql": "SELECT 1"},
                # The error message echoes the value: the password itself.
                {
                    "name": "bad",
                    "type": "sql",
                    "connection": "pgsecret",
                    "sql": f"SELECT CAST('{SECRET_PASSWORD}' AS integer)",
                    "depends_on": ["ok"],
                },
            ],
        }
    )
    fine = pipeline_create(
        data={
            "name": "fine",
            "on_failure": on_failure,
            "tasks": [{"name": "t", "type": "sql", "connection": "pgsecret", "sql": "SELECT 1"}],
        }
    )
    workers(env={**same_prefix(), **ALLOW_LOOPBACK})
    runs = [execution_create(pipeline=failing) for _ in range(2)]
    good = execution_create(pipeline=fine)
    for run in [*runs, good]:
        finished(run)
    assert [r.status for r in runs] == ["failed", "failed"]
    assert good.status == "success"

    wait_for(lambda: len(receiver.requests) >= 2, timeout=60, what="two alerts")
    # Re-sending by hand (a duplicate message, a re-delivered task) is refused.
    for run in runs:
        assert alerts.send_failure_alert(str(run.pk)) == {"webhook": "duplicate"}
    time.sleep(2)  # room for a duplicate from the workers to show up

    assert len(receiver.requests) == 2
    payloads = receiver.payloads()
    assert {p["execution_id"] for p in payloads} == {str(r.pk) for r in runs}
    for path, body in receiver.requests:
        assert path == HOOK_PATH
        text = body.decode()
        assert SECRET_PASSWORD not in text
        assert "TOKENsecretpath" not in text  # the webhook URL's own secret
    payload = payloads[0]
    assert payload["pipeline"] == "nightly"
    assert payload["failed_task"] == "bad"
    assert payload["url"].endswith(f"/runs/{payload['execution_id']}")
    assert "nightly" in payload["text"] and payload["execution_id"] in payload["text"]
    assert "***" in payload["error"] or "integer" in payload["error"]
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds == ["header", "section", "section", "actions"]
    field_text = " ".join(f["text"] for f in payload["blocks"][1]["fields"])
    assert "*Failed task*\nbad" in field_text


def _failed_run(make_pipeline: Callable[..., Any], on_failure: dict[str, Any]) -> Execution:
    """A run made failed by hand, its task carrying an error."""
    pipeline = make_pipeline("p1", on_failure=on_failure)
    execution = execution_create(pipeline=pipeline)
    Execution.objects.filter(pk=execution.pk).update(status="failed", error="t1: boom")
    TaskRun.objects.filter(execution=execution).update(
        status="failed", error="boom: relation missing\nTraceback ..."
    )
    execution.refresh_from_db()
    return execution


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    sent: list[Any] = []
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", sent.extend)
    return sent


@pytest.mark.usefixtures("no_broker")
def test_it_emails_once_through_the_django_backend(
    make_pipeline: Callable[..., Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    execution = _failed_run(make_pipeline, {"email": ["ops@example.com"]})
    assert alerts.send_failure_alert(str(execution.pk)) == {"email": "sent"}
    assert alerts.send_failure_alert(str(execution.pk)) == {"email": "duplicate"}
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@example.com"]
    assert message.subject == "[DataDog] Pipeline p1 failed"
    assert "Failed task: t1" in message.body
    assert "boom: relation missing" in message.body and "Traceback" not in message.body
    assert f"/runs/{execution.pk}" in message.body


@pytest.mark.usefixtures("no_broker", "fast_retries", "loopback_allowed")
def test_it_retries_5xx_and_gives_up_after_bounded_attempts(
    make_pipeline: Callable[..., Any],
) -> None:
    flaky = Receiver([500, 503, 200])
    try:
        assert alerts.post_webhook(flaky.url, {"text": "x"}) == "sent"
        assert len(flaky.requests) == 3
    finally:
        flaky.close()
    down = Receiver([500] * 10)
    try:
        assert alerts.post_webhook(down.url, {"text": "x"}) == "failed: HTTP 500"
        assert len(down.requests) == alerts.ATTEMPTS
    finally:
        down.close()
    refused = Receiver([400])
    try:
        assert alerts.post_webhook(refused.url, {"text": "x"}) == "failed: HTTP 400"
        assert len(refused.requests) == 1  # a client error is not retried
    finally:
        refused.close()
    started = time.monotonic()
    assert alerts.post_webhook("http://127.0.0.1:9/none", {"text": "x"}).startswith("failed")
    assert time.monotonic() - started < 10


@pytest.mark.usefixtures("no_broker")
def test_it_enqueues_only_for_failed_runs_with_on_failure(
    make_pipeline: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr("pipelines.alerts.async_task", lambda *a, **k: queued.append(a))
    failed = _failed_run(make_pipeline, {"webhook": "https://hooks.example.com/x"})
    alerts.on_execution_finished(sender=Execution, execution_id=failed.pk)
    assert queued == [(alerts.SEND_TASK, str(failed.pk))]

    plain = make_pipeline("p2")
    other = execution_create(pipeline=plain)
    Execution.objects.filter(pk=other.pk).update(status="failed")
    alerts.on_execution_finished(sender=Execution, execution_id=other.pk)  # no on_failure
    assert len(queued) == 1

    def broken(*a: Any, **k: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr("pipelines.alerts.async_task", broken)
    # Never raises into the engine: the run it reports on is committed.
    alerts.on_execution_finished(sender=Execution, execution_id=failed.pk)


@pytest.mark.usefixtures("fast_retries")
def test_it_refuses_loopback_webhooks_unless_allowed(receiver: Receiver, settings: Any) -> None:
    # At send time too (a definition stored before the rule, or written
    # around the API): refused before any packet leaves.
    outcome = alerts.post_webhook(receiver.url, {"text": "x"})
    assert outcome == (
        "failed: host '127.0.0.1' is refused: 127.0.0.1"
        " (loopback: http targets must be public or in OUTBOUND_ALLOW_NETWORKS)"
    )
    assert "TOKENsecretpath" not in outcome
    assert receiver.requests == []
    settings.OUTBOUND_ALLOW_NETWORKS = ["10.0.0.0/8"]  # another network: still refused
    assert alerts.post_webhook(receiver.url, {"text": "x"}).startswith("failed: host")
    assert receiver.requests == []
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    assert alerts.post_webhook(receiver.url, {"text": "x"}) == "sent"
    assert len(receiver.requests) == 1


@pytest.mark.usefixtures("fast_retries")
def test_it_posts_to_the_checked_address_when_dns_rebinds(
    receiver: Receiver, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = receiver.server.server_address[1]
    # The second DNS answer points at another receiver, on an address the
    # policy does not allow: only the first, checked, address may be dialled.
    evil = Receiver(address="127.0.0.2", port=port)
    try:
        settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
        dns = RebindingDns(monkeypatch, "hooks.rebind.test", ["127.0.0.1", "127.0.0.2"])
        url = f"http://hooks.rebind.test:{port}{HOOK_PATH}"
        assert alerts.post_webhook(url, {"text": "x"}) == "sent"
        assert dns.lookups == 1
        assert [path for path, _ in receiver.requests] == [HOOK_PATH]
        assert receiver.hosts == [f"hooks.rebind.test:{port}"]  # Host stays the name
        assert evil.requests == []
        # The next attempt resolves again and is refused: no packet to 127.0.0.2.
        outcome = alerts.post_webhook(url, {"text": "x"})
        assert outcome.startswith("failed: host 'hooks.rebind.test' is refused: resolves to")
        assert evil.requests == [] and len(receiver.requests) == 1
    finally:
        evil.close()


@pytest.mark.usefixtures("fast_retries")
def test_it_posts_https_to_the_checked_address_verifying_the_name(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A certificate for the name only: verification succeeds only if TLS
    # checks the URL's name while the socket goes to the checked address.
    cert, key = self_signed(tmp_path, "hooks.rebind.test")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment]
    secure = Receiver(tls=server_tls)
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client's trust store
        settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
        dns = RebindingDns(monkeypatch, "hooks.rebind.test", ["127.0.0.1", "127.0.0.2"])
        port = secure.server.server_address[1]
        url = f"https://hooks.rebind.test:{port}{HOOK_PATH}"
        assert alerts.post_webhook(url, {"text": "x"}) == "sent"
        assert dns.lookups == 1
        assert names == ["hooks.rebind.test"]
        assert secure.hosts == [f"hooks.rebind.test:{port}"]
        # Another name on the same address: the certificate does not match.
        other = RebindingDns(monkeypatch, "other.rebind.test", ["127.0.0.1"])
        outcome = alerts.post_webhook(f"https://other.rebind.test:{port}/x", {"text": "x"})
        assert other.lookups == alerts.ATTEMPTS
        assert outcome == "failed: SSLCertVerificationError"
        assert len(secure.requests) == 1
    finally:
        secure.close()
