"""Audit trail. Users and roles are Django's own (roles are groups)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ActorKind(models.TextChoices):
    """Who an audit event's actor is; the name alone could be taken for a user's."""

    # A signed-in user (``actor`` set until the user is deleted).
    USER = "user", "user"
    # A management command; the name is ``cli:<os user>``.
    CLI = "cli", "command line"
    # Nobody signed in: a failed login names the user name typed.
    ANONYMOUS = "anonymous", "anonymous"
    # The platform itself (a schedule, a worker): no name.
    SYSTEM = "system", "system"


class AuditEvent(models.Model):
    """Who did what to which object, when and from where. Never changed."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the trail survives the user's deletion, and names the
    # attempted user on a failed login.
    actor_name = models.CharField(max_length=150, blank=True)
    # Said apart from the name: user names are not ours to constrain (an
    # account made outside the admin form may be called "cli:root"), so
    # "cli:" alone would not tell a command from a user.
    actor_kind = models.CharField(
        max_length=16, choices=ActorKind.choices, default=ActorKind.USER, db_index=True
    )
    action = models.CharField(max_length=32, db_index=True)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"
