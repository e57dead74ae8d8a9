"""Network helpers for tests of the outbound host policy: real listeners, a rebinding DNS.

DNS is the one piece a test cannot run for real on loopback, so
``RebindingDns`` stands for a DNS server whose answer changes between two
lookups; everything that receives (or must not receive) a connection is a
real socket.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest


class Listener:
    """A TCP listener on a loopback address that records every connection it accepts."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.address, self.port = self.sock.getsockname()[:2]
        self.accepted: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(0.5)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            self.accepted.append(data)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


class RebindingDns:
    """A DNS answer for one name that changes after the first lookup."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, answers: list[str]) -> None:
        self.name = name
        self.answers = list(answers)
        self.lookups = 0
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != name:
                return real(host, port, *args, **kwargs)
            answer = self.answers[min(self.lookups, len(self.answers) - 1)]
            self.lookups += 1
            return real(answer, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
