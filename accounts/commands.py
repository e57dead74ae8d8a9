"""The base of management commands that change state: they act as ``cli:<os user>``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.services import audit_actor, cli_actor_name


class AuditedCommand(BaseCommand):
    """A command whose changes the audit trail records as ``cli:<os user>`` (kind ``cli``).

    Every audit event written while it runs without a signed-in user, by
    the services it calls or by the command itself, names the OS account
    that started it.
    """

    def execute(self, *args: Any, **options: Any) -> str | None:
        with audit_actor(cli_actor_name()):
            return super().execute(*args, **options)
