"""API shapes for authentication, sharing and the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ActorKind, AuditEvent
from accounts.permissions import LEVEL_ORDER
from accounts.services import sharing_users


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=4096, trim_whitespace=False, write_only=True, style={"input_type": "password"}
    )


class TokenResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.ChoiceField(choices=["bearer"])
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires")
    refresh_token = serializers.CharField()


class RefreshTokenSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


_LEVELS = [level.value for level in LEVEL_ORDER]


@extend_schema_field(
    {"type": "object", "additionalProperties": {"type": "string", "enum": _LEVELS}}
)
class LevelMapField(serializers.DictField):
    """``{name: level}``; level one of view, operate, edit."""

    child = serializers.ChoiceField(choices=_LEVELS)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, dict) and len(data) > 1000:
            raise serializers.ValidationError("at most 1000 entries")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class SharingSerializer(serializers.Serializer):
    """Who an object is shared with; PUT replaces both maps.

    Validation resolves the names, so ``validated_data`` maps user and group
    objects to levels, ready for ``accounts.services.sharing_set``. Context:
    ``actor`` (who shares: only admins learn why a user name is refused) and
    ``keep`` (user names the object is shared with now).
    """

    owner = serializers.CharField(read_only=True, allow_null=True)
    users = LevelMapField(required=False, default=dict)
    groups = LevelMapField(required=False, default=dict)

    def validate_users(self, value: dict[str, str]) -> dict[Any, str]:
        found, refused = sharing_users(
            value, actor=self.context.get("actor"), keep=self.context.get("keep", ())
        )
        if refused:
            raise serializers.ValidationError({name: [why] for name, why in refused.items()})
        return {found[name]: level for name, level in value.items()}

    def validate_groups(self, value: dict[str, str]) -> dict[Any, str]:
        found = {g.name: g for g in Group.objects.filter(name__in=list(value))}
        unknown = {name: ["unknown group"] for name in value if name not in found}
        if unknown:
            raise serializers.ValidationError(unknown)
        return {found[name]: level for name, level in value.items()}


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "actor_kind",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "ip",
            "details",
        ]
        read_only_fields = fields


class AuditFilterSerializer(serializers.Serializer):
    """Query parameters of ``GET /audit-events``."""

    action = serializers.CharField(required=False, max_length=32)
    actor = serializers.CharField(required=False, max_length=150)
    actor_kind = serializers.ChoiceField(required=False, choices=ActorKind.choices)
    object_type = serializers.CharField(required=False, max_length=32)
    object_id = serializers.CharField(required=False, max_length=64)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
