"""REST APIs over HTTP(S): a base URL with secret headers and auth (SPEC §8).

``config``: ``base_url`` (http or https, no user name or query), ``headers``
(an object of header names to values) and ``auth`` (``{type: bearer,
token}`` or ``{type: basic, username, password}``). ``headers`` and
``auth`` are secrets: stored encrypted, never answered, dropped when
``base_url`` moves to another scheme, host or port unless sent again.

Every request goes through ``HttpClient``: the base URL's host is checked by
the outbound policy once (``core.outbound.check_url``; loopback and private
networks only when ``OUTBOUND_ALLOW_NETWORKS`` lists them) and the socket is
opened to the checked address (``_PinnedBackend``), while TLS still checks
the URL's name. A URL leaving the base URL's scheme, host and port (a
redirect, a next link) is refused. 429 waits for ``Retry-After``; 5xx and
connection errors are retried with backoff, within the run's time left.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import re
import socket
import ssl
import time
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

# httpcore's own socket wrapper (what SyncBackend returns; not exported by name).
from httpcore._backends.sync import SyncStream

from connectors.base import MAX_CONNECT_TIMEOUT_S, Connector, ConnectorError, connect_failure
from connectors.types import Column
from core import outbound

__all__ = ["HttpClient", "HttpConnector"]

logger = logging.getLogger(__name__)
# httpx logs every request's URL at INFO: a line per page in the workers' log.
# The task's own log says what a copy fetched (records, requests, each retry).
logging.getLogger("httpx").setLevel(logging.WARNING)

# One page's body is held in memory while its records are spooled.
MAX_PAGE_BYTES = 64 * 1024 * 1024
CONNECT_TIMEOUT_S = 10.0
# A request waits at most this long for the server's answer.
READ_TIMEOUT_S = 60.0
# Attempts of one request (5xx, 429, connection errors), within the time left.
MAX_ATTEMPTS = 6
MAX_BACKOFF_S = 30.0
# A Retry-After longer than this is not waited for (the request fails).
MAX_RETRY_AFTER_S = 600.0
MAX_REDIRECTS = 5
USER_AGENT = "datadog-platform"

_TOKEN_RE = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}\Z")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) URL, or None when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname.lower(), port


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _base_url_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return "must be an http(s) URL"
    if _has_control(url) or " " in url:
        return "contains whitespace or control characters"
    parts = urlsplit(url)
    if origin(url) is None:
        return "must be an http:// or https:// URL with a host"
    if "@" in parts.netloc:
        return "must not hold a user name or password (use auth)"
    if parts.query or parts.fragment:
        return "must not have a query or fragment (use the copy source's params)"
    return outbound.url_validation_problem(url)


def _headers_problems(headers: Any) -> list[tuple[str, str]]:
    if not isinstance(headers, dict):
        return [("headers", "must be an object of header names to values")]
    problems = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            problems.append(("headers", f"{str(name)[:40]!r} is not a valid header name"))
        elif name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            problems.append((f"headers.{name}", "is set by the client"))
        elif not isinstance(value, str) or _has_control(value):
            # Never the value: it is a secret.
            problems.append((f"headers.{name}", "must be a string without control characters"))
    return problems


def _auth_problems(auth: Any) -> list[tuple[str, str]]:
    shapes = {"bearer": ("token",), "basic": ("username", "password")}
    if not isinstance(auth, dict) or auth.get("type") not in shapes:
        return [("auth", "must be {type: bearer, token} or {type: basic, username, password}")]
    needed = shapes[auth["type"]]
    problems = [
        (f"auth.{key}", "unknown key") for key in sorted(set(auth) - {"type", *needed}) if key
    ]
    for key in needed:
        value = auth.get(key)
        if not isinstance(value, str) or not value or _has_control(value):
            problems.append(
                (f"auth.{key}", "must be a non-empty string without control characters")
            )
        elif auth["type"] == "basic" and key == "username" and ":" in value:
            problems.append(("auth.username", "must not contain ':'"))
    return problems


class HttpConnector(Connector):
    kind = "http"
    secret_fields = frozenset({"headers", "auth"})
    required_fields = frozenset({"base_url"})
    allowed_fields = frozenset({"base_url", "headers", "auth", "description"})

    @classmethod
    def validate_config(cls, config: Any) -> list[tuple[str, str]]:
        problems = super().validate_config(config)
        if not isinstance(config, dict):
            return problems
        if "base_url" in config:
            problem = _base_url_problem(config["base_url"])
            if problem:
                problems.append(("base_url", problem))
        if config.get("headers") not in (None, ""):
            problems += _headers_problems(config["headers"])
        if config.get("auth") not in (None, ""):
            problems += _auth_problems(config["auth"])
        return problems

    @classmethod
    def endpoint(cls, config: dict[str, Any]) -> Any:
        """What the secrets belong to: the base URL's scheme, host and port."""
        return origin(str(config.get("base_url") or ""))

    def where(self) -> str:
        """How messages name this connection: its kind and host (never a secret)."""
        found = origin(str(self.config.get("base_url") or ""))
        return f"http {found[1]}" if found else f"http {self.name}"

    def url(self, path: str) -> str:
        """``path`` under the base URL (``/v1/orders`` after ``https://h/api``)."""
        base = str(self.config.get("base_url") or "")
        return base.rstrip("/") + "/" + path.lstrip("/") if path else base

    def client(self, ctx: Any = None, *, read_timeout: float = READ_TIMEOUT_S) -> HttpClient:
        """An ``HttpClient`` for this connection; close it (a context manager)."""
        return HttpClient(self, ctx, read_timeout=read_timeout)

    def test(self) -> None:
        """A GET of ``base_url``: any answer below 400 passes (within 30 s: a web request waits)."""
        with self.client(read_timeout=MAX_CONNECT_TIMEOUT_S) as client:
            client.get(self.url(""), attempts=1)

    def describe(self, table: str | None = None, query: str | None = None) -> list[Column]:
        raise ConnectorError(
            "http sources have no table: their columns are the records' keys, read when copied"
        )


class _PinnedBackend(httpcore.SyncBackend):
    """httpcore's network backend, dialling only the addresses the policy checked.

    httpcore hands ``connect_tcp`` the URL's host; the socket goes to
    ``target.addresses`` instead (``outbound.open_socket``). TLS is started
    afterwards by httpcore with the URL's name (SNI and certificate check).
    Any other host or port is refused: the client only ever asks for the
    base URL's.
    """

    def __init__(self, target: outbound.Target) -> None:
        self.target = target
        self.sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.aborted = False

    def abort(self) -> None:
        """End every open connection now, a read in progress included (any thread).

        ``close`` from another thread does not wake a blocked ``recv``;
        ``shutdown`` does.
        """
        self.aborted = True
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host.lower() != _ascii_host(self.target.host) or port != self.target.port:
            raise httpcore.ConnectError(f"host {host!r} was not checked; refused")
        try:
            sock = outbound.open_socket(self.target, timeout)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        for option in socket_options or ():
            sock.setsockopt(*option)
        stream = _Stream(sock, self.sockets)
        if self.aborted:
            sock.shutdown(socket.SHUT_RDWR)
        return stream


class _Stream(SyncStream):
    """httpcore's socket stream, recording its socket (and its TLS socket) for ``abort``."""

    def __init__(self, sock: socket.socket, sockets: weakref.WeakSet[socket.socket]) -> None:
        super().__init__(sock)
        self._sockets = sockets
        sockets.add(sock)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().start_tls(ssl_context, server_hostname, timeout)
        tls_sock = stream.get_extra_info("socket")
        if tls_sock is not None:
            self._sockets.add(tls_sock)
        return stream


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool that uses ``_PinnedBackend``.

    httpx 0.28 takes no network backend, so the pool it builds is replaced
    by one with the same TLS context and the pinned backend (``_pool`` is
    the one attribute HTTPTransport sends requests through). No proxy: a
    proxy would resolve the name itself.
    """

    def __init__(self, target: outbound.Target) -> None:
        super().__init__(trust_env=False)
        self.backend = _PinnedBackend(target)
        self._pool = httpcore.ConnectionPool(
            # The system's trust store (SSL_CERT_FILE / SSL_CERT_DIR honoured),
            # as for webhooks: a private CA is the operator's to add there.
            ssl_context=ssl.create_default_context(),
            max_connections=4,
            network_backend=self.backend,
        )


class HttpClient:
    """GET JSON from one http connection: pinned, same-origin, retried, bounded.

    ``ctx`` (a run's context, optional) gives the time left
    (``seconds_left``) and is checked while waiting (``check``), so a cancel
    stops a wait for ``Retry-After`` or a backoff at once.
    """

    def __init__(
        self, connector: HttpConnector, ctx: Any = None, *, read_timeout: float = READ_TIMEOUT_S
    ) -> None:
        self.connector = connector
        self.ctx = ctx
        self.where = connector.where()
        base = str(connector.config.get("base_url") or "")
        problem = _base_url_problem(base) if origin(base) is None else None
        if problem:
            raise ConnectorError(f"{self.where}: base_url {problem}")
        self.origin = origin(base)
        try:
            target = outbound.check_url(base)
        except outbound.HostUnresolved as exc:
            raise ConnectorError(f"{self.where}: {exc}", transient=True) from None
        except outbound.HostRefused as exc:
            raise ConnectorError(f"{self.where}: {exc}") from None
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        headers.update(connector.config.get("headers") or {})
        auth: Any = None
        spec = connector.config.get("auth") or {}
        if spec.get("type") == "bearer":
            headers["Authorization"] = f"Bearer {spec.get('token', '')}"
        elif spec.get("type") == "basic":
            auth = httpx.BasicAuth(spec.get("username", ""), spec.get("password", ""))
        self.requests = 0
        self._transport = _PinnedTransport(target)
        self._client = httpx.Client(
            transport=self._transport,
            headers=headers,
            auth=auth,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_S),
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def abort(self) -> None:
        """Stop a request in flight from another thread (a cancel hook)."""
        self._transport.backend.abort()

    def _same_origin(self, url: str) -> None:
        if origin(url) != self.origin:
            found = origin(url)
            shown = f"{found[0]}://{found[1]}:{found[2]}" if found else "a URL that is not http(s)"
            raise ConnectorError(
                f"{self.where}: {shown} is not the base URL's scheme, host and port; refused"
            )

    def get(self, url: str, params: Any = None, *, attempts: int = MAX_ATTEMPTS) -> Any:
        """GET ``url`` and its decoded JSON body (None for an empty one).

        Redirects are followed within the base URL's origin only. 429 waits
        for ``Retry-After``, 5xx and connection errors are retried with
        backoff (1, 2, 4 … s), each wait only when the run has time left for it.
        """
        self._same_origin(url)
        attempt = 0
        redirects = 0
        while True:
            attempt += 1
            self._check()
            try:
                status, location, retry_after, body = self._send(url, params)
            except httpx.TransportError as exc:
                phrase = _transport_phrase(exc)
                if attempt >= attempts:
                    raise ConnectorError(f"{self.where}: {phrase}", transient=True) from None
                self._wait(_backoff(attempt), f"{phrase}; retrying")
                continue
            except httpx.HTTPError as exc:
                # Not the network (a body that does not decode, say): named by its class only.
                raise ConnectorError(f"{self.where}: {type(exc).__name__}") from None
            if status in (301, 302, 303, 307, 308) and location:
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise ConnectorError(f"{self.where}: more than {MAX_REDIRECTS} redirects")
                url = urljoin(url, location)
                self._same_origin(url)
                params = None  # the new location carries its own query
                attempt = 0
                continue
            if status == 429 or status >= 500:
                if attempt >= attempts:
                    raise ConnectorError(
                        f"{self.where}: HTTP {status} after {attempt} attempts", transient=True
                    )
                wait = retry_after if status == 429 and retry_after is not None else None
                if wait is not None and wait > MAX_RETRY_AFTER_S:
                    raise ConnectorError(
                        f"{self.where}: HTTP 429 asks to retry after {wait:.0f} s; not waited for",
                        transient=True,
                    )
                self._wait(_backoff(attempt) if wait is None else wait, f"HTTP {status}; retrying")
                continue
            if status >= 400:
                raise ConnectorError(f"{self.where}: {_status_phrase(status)}")
            if status >= 300:
                raise ConnectorError(f"{self.where}: HTTP {status} without a Location")
            if not body.strip():
                return None
            try:
                return json.loads(body)
            except ValueError:
                raise ConnectorError(f"{self.where}: the answer is not JSON") from None

    def _send(self, url: str, params: Any) -> tuple[int, str | None, float | None, bytes]:
        self.requests += 1
        with self._client.stream("GET", url, params=params) as response:
            status = response.status_code
            if status >= 300:
                return (
                    status,
                    response.headers.get("location"),
                    _retry_after(response.headers.get("retry-after")),
                    b"",
                )
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_PAGE_BYTES:
                    raise ConnectorError(
                        f"{self.where}: an answer is larger than {MAX_PAGE_BYTES // 2**20} MiB;"
                        " use pagination"
                    )
                chunks.append(chunk)
            return status, None, None, b"".join(chunks)

    def _check(self) -> None:
        if self.ctx is not None and hasattr(self.ctx, "check"):
            self.ctx.check()

    def _wait(self, seconds: float, why: str) -> None:
        """Sleep ``seconds`` (checking the run meanwhile) if the run has time for it."""
        left = self.ctx.seconds_left() if hasattr(self.ctx, "seconds_left") else None
        if left is not None and seconds >= left:
            raise ConnectorError(
                f"{self.where}: {why} in {seconds:.0f} s would pass the task's timeout",
                transient=False,
            )
        if self.ctx is not None and hasattr(self.ctx, "log"):
            self.ctx.log(f"{self.where}: {why} in {seconds:.1f} s")
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            self._check()
            time.sleep(min(0.25, remaining))
        self._check()


def _ascii_host(host: str) -> str:
    """The host as httpcore names it: lowercase, IDNA for a non-ASCII name."""
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host.lower()


def _backoff(attempt: int) -> float:
    return float(min(MAX_BACKOFF_S, 2 ** (attempt - 1)))


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` asks for (a number or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _status_phrase(status: int) -> str:
    if status in (401, 403):
        return f"authentication failed (HTTP {status})"
    if status == 404:
        return "not found (HTTP 404)"
    return f"HTTP {status}"


def _transport_phrase(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return connect_failure(exc)
