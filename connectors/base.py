"""The interface every connector plugin implements. Imports no Django."""

from __future__ import annotations

import ipaddress
import socket
from abc import ABC, abstractmethod
from typing import Any, ClassVar


class ConnectorError(Exception):
    """A connector failed. ``transient`` says whether retrying may help.

    Messages name the host and the cause, never a secret.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


# Cloud metadata and other link-local addresses are never a connection target.
_FORBIDDEN_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)


def check_host_allowed(host: str) -> None:
    """Refuse hosts that resolve to link-local (metadata) addresses."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return  # unresolvable hosts fail later with a clear connect error
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if any(address in net for net in _FORBIDDEN_NETWORKS):
            raise ConnectorError(f"host {host!r} resolves to a link-local address; refused")


class Connector(ABC):
    """One kind of connection (``postgresql``, ``csv``, …).

    ``config`` is the full configuration, secrets included; connectors must
    never put a secret into an exception message or a log line.
    """

    kind: ClassVar[str]
    # Config keys stored encrypted and never returned.
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # Config keys: required ones and every allowed one (for validation).
    required_fields: ClassVar[frozenset[str]] = frozenset()
    allowed_fields: ClassVar[frozenset[str]] = frozenset()
    # Whether the kind runs SQL (``sql`` and ``check`` tasks, push-down).
    speaks_sql: ClassVar[bool] = False

    def __init__(self, *, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.config = config

    @classmethod
    def validate_config(cls, config: Any) -> list[tuple[str, str]]:
        """Problems with ``config`` as ``(key, message)`` pairs; empty when valid."""
        if not isinstance(config, dict):
            return [("", "must be an object")]
        problems: list[tuple[str, str]] = []
        for key in sorted(set(config) - cls.allowed_fields):
            problems.append((key, "unknown key"))
        for key in sorted(cls.required_fields - set(config)):
            problems.append((key, "required"))
        return problems

    @abstractmethod
    def test(self) -> None:
        """Connect and run a trivial operation; raise ConnectorError on failure."""
