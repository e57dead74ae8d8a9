"""A real REST API in a thread, for http connection and copy tests.

``RestApi`` serves ``records`` (a list of dicts the test may change between
runs) under ``/api`` in the four pagination styles, and a few endpoints that
misbehave on purpose. Every request is recorded (path, query, headers).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE = 3


class RestApi:
    """``http://127.0.0.1:<port>/api/...``; close() when done (a context manager)."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        address: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.records = records
        self.requests: list[dict[str, Any]] = []
        # Failures to give before answering: path -> [status, ...]
        self.failures: dict[str, list[int]] = {}
        self.retry_after = "1"
        self.token: str | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                api.handle(self)

        self.server = ThreadingHTTPServer((address, 0), Handler)
        # A handler still sleeping (/slow) must not hold close() up.
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.slow_answered = threading.Event()
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.base_url = f"{'https' if tls else 'http'}://{address}:{self.port}/api"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self) -> RestApi:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    # ------------------------------------------------------------------ serving

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.requests.append(
            {"path": parts.path, "query": query, "headers": dict(h.headers.items())}
        )
        pending = self.failures.get(parts.path)
        if pending:
            status = pending.pop(0)
            headers = {"Retry-After": self.retry_after} if status == 429 else {}
            return self.send(h, status, {"error": "on purpose"}, headers)
        if self.token is not None and h.headers.get("Authorization") != f"Bearer {self.token}":
            return self.send(h, 401, {"error": "who are you"})
        route = parts.path.removeprefix("/api")
        records = self.records
        if route == "/items":  # the body is the list; page style
            page = int(query.get("page", "1"))
            return self.send(h, 200, records[(page - 1) * PAGE : page * PAGE])
        if route == "/offset":
            offset, limit = int(query.get("offset", "0")), int(query.get("limit", "100"))
            return self.send(h, 200, {"data": records[offset : offset + min(limit, PAGE)]})
        if route == "/cursor":
            start = int(query.get("cursor") or 0)
            end = start + PAGE
            cursor = str(end) if end < len(records) else None
            body = {"data": records[start:end], "meta": {"next_cursor": cursor}}
            return self.send(h, 200, body)
        if route == "/next":
            start = int(query.get("after", "0"))
            end = start + PAGE
            nxt = f"/api/next?after={end}" if end < len(records) else None
            return self.send(h, 200, {"data": records[start:end], "links": {"next": nxt}})
        if route == "/nested":
            return self.send(h, 200, {"result": {"items": records}})
        if route == "/all":
            return self.send(h, 200, records)
        if route == "/leave":
            target = query.get("to", "http://example.com/")
            return self.send(h, 302, {}, {"Location": target})
        if route == "/hop":
            return self.send(h, 302, {}, {"Location": "/api/all"})
        if route == "/slow":  # answers after 20 s
            time.sleep(20)
            self.slow_answered.set()
            return self.send(h, 200, [])
        if route == "/badgzip":  # a body that does not decode as it says
            return self.send(h, 200, {"not": "gzip"}, {"Content-Encoding": "gzip"})
        if route == "/text":
            return self.send(h, 200, "x", raw=b"<html>not json</html>")
        if route in ("", "/"):
            return self.send(h, 200, {"ok": True})
        return self.send(h, 404, {"error": "no such thing"})

    @staticmethod
    def send(
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        data = json.dumps(body).encode() if raw is None else raw
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)


def sample(n: int, start: int = 1) -> list[dict[str, Any]]:
    """``n`` records with every JSON kind (and a key only some records have)."""
    out = []
    for i in range(start, start + n):
        record: dict[str, Any] = {
            "id": i,
            "name": f"item {i}",
            "price": i + 0.5,
            "active": i % 2 == 0,
            "tags": ["a", f"t{i}"],
            "meta": {"rank": i},
            "updated_at": f"2026-03-01T10:{i:02d}:00Z",
        }
        if i % 3 == 0:
            record["note"] = f"third {i}"
        out.append(record)
    return out
