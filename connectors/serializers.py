"""API shapes of connections. Secrets are write-only: never in any answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connectors.models import Connection
from connectors.registry import KINDS


class ConnectionSerializer(serializers.ModelSerializer):
    """A connection as the API shows it: settings without secrets, plus which secrets are set."""

    config = serializers.SerializerMethodField()
    secrets_set = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Connection
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "config",
            "secrets_set",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_config(self, obj: Connection) -> dict[str, Any]:
        # The model keeps secrets out of ``config`` already; filtering again
        # means a bug there still cannot leak one here.
        secret = obj.secret_fields
        return {k: v for k, v in (obj.config or {}).items() if k not in secret}

    @extend_schema_field({"type": "array", "items": {"type": "string"}})
    def get_secrets_set(self, obj: Connection) -> list[str]:
        return obj.secret_keys_set()

    @extend_schema_field({"type": "string", "nullable": True})
    def get_created_by(self, obj: Connection) -> str | None:
        return obj.created_by.get_username() if obj.created_by is not None else None


class ConnectionWriteSerializer(serializers.Serializer):
    """Body of create (POST), replace (PUT) and change (PATCH).

    ``config`` holds what the kind needs, secrets included (``password``);
    a secret left out or sent empty keeps its stored value, unless the
    change gives a new kind, host, port, database or user name: then the
    stored secrets are dropped and must be sent again.
    """

    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=list(KINDS))
    config = serializers.DictField(default=dict)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class ConnectionFilterSerializer(serializers.Serializer):
    """Query parameters of ``GET /connections``."""

    kind = serializers.ChoiceField(choices=list(KINDS), required=False)
    search = serializers.CharField(required=False, max_length=200)


class ConnectionTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_null=True)
