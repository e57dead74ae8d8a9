"""Connections: a named, typed endpoint with its secrets encrypted at rest."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from connectors import crypto
from connectors.registry import CONNECTORS, connector_class

KIND_CHOICES = [(kind, kind) for kind in CONNECTORS]


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

    def set_config(self, config: dict[str, Any], *, keep_secrets: bool = True) -> None:
        """Split ``config`` into plain settings and encrypted secrets.

        A secret left out (or sent empty) keeps its stored value when
        ``keep_secrets``, so a client can change the host without resending
        the password it can never read back.
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
        return connector_class(self.kind)(name=self.name, config=self.full_config())
