"""Connections: a named, typed endpoint with its secrets encrypted at rest."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from connectors import crypto
from connectors.registry import CONNECTORS, connector_class

KIND_CHOICES = [(kind, kind) for kind in CONNECTORS]

# The config keys that say which server (and which account on it) a
# connection reaches. Stored secrets belong to that endpoint: changing any of
# these (or the kind) drops them unless they are sent again (SPEC §10), so an
# editor cannot point a connection at a server they run and receive the
# owner's password.
ENDPOINT_KEYS = ("host", "port", "database", "username")


class Connection(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=KIND_CHOICES)
    # Non-secret settings only; secret keys live encrypted in ``secrets``.
    config = models.JSONField(default=dict, blank=True)
    secrets = models.TextField(blank=True, editable=False)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="connections",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("use_connection", "Can use the connection in a pipeline")]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        # Never the secrets, not even encrypted.
        return f"<Connection {self.name!r} kind={self.kind!r}>"

    @property
    def secret_fields(self) -> frozenset[str]:
        return connector_class(self.kind).secret_fields

    def secret_keys_set(self) -> list[str]:
        """Names of the secret fields that have a value (never the values)."""
        return sorted(crypto.decrypt_json(self.secrets))

    def endpoint_changed(self, kind: str, config: dict[str, Any]) -> bool:
        """Whether ``kind`` and ``config`` reach another endpoint than the stored ones.

        A port left out counts as the kind's default port, so adding
        ``port: 5432`` to a PostgreSQL connection changes nothing.
        """
        if kind != self.kind:
            return True
        # A kind without host keys (http: its base URL) says what its endpoint is.
        endpoint = getattr(connector_class(kind), "endpoint", None)
        if endpoint is not None:
            return bool(endpoint(self.config) != endpoint(config))
        default_port = getattr(connector_class(kind), "default_port", None)
        for key in ENDPOINT_KEYS:
            old, new = self.config.get(key), config.get(key)
            if key == "port":
                old, new = old or default_port, new or default_port
            if old != new:
                return True
        return False

    def set_config(self, config: dict[str, Any], *, keep_secrets: bool = True) -> None:
        """Split ``config`` into plain settings and encrypted secrets.

        A secret left out (or sent empty) keeps its stored value when
        ``keep_secrets``, so a client can change the description or options
        without resending the password it can never read back. Callers pass
        ``keep_secrets=False`` when the endpoint changes (``endpoint_changed``).
        """
        secret_fields = self.secret_fields
        plain = {k: v for k, v in config.items() if k not in secret_fields}
        given = {k: v for k, v in config.items() if k in secret_fields and v not in (None, "")}
        stored = crypto.decrypt_json(self.secrets) if keep_secrets else {}
        stored.update(given)
        self.config = plain
        self.secrets = crypto.encrypt_json(stored)

    def full_config(self) -> dict[str, Any]:
        """Settings with secrets decrypted, for connectors only. Never log or return it."""
        return {**self.config, **crypto.decrypt_json(self.secrets)}

    def connector(self) -> Any:
        """A connector instance for this connection."""
        return connector_class(self.kind)(
            name=self.name, config=self.full_config(), connection_id=str(self.pk)
        )
