"""Migrate, create the role groups and the first admin. Safe to run again.

In ``ops``, not ``accounts``: it also schedules the pipelines' maintenance
task, and only a layer above both may import both.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.commands import AuditedCommand
from accounts.permissions import Role
from accounts.services import roles_setup, user_change_record, user_set_role
from pipelines.tasks import maintain_schedule_ensure


class Command(AuditedCommand):
    help = "Migrate, create roles and the first admin (DATADOG_ADMIN_USER / _PASSWORD)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--noinput", action="store_true", help="never prompt")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
        roles_setup()
        self.stdout.write(f"roles: {', '.join(r.value for r in Role)}")
        maintain_schedule_ensure()
        self._admin()

    def _admin(self) -> None:
        User = get_user_model()
        username = os.environ.get("DATADOG_ADMIN_USER", "admin")
        password = os.environ.get("DATADOG_ADMIN_PASSWORD", "")
        user = User.objects.filter(username=username).first()
        if user is not None:
            self.stdout.write(f"admin user {username!r} exists; unchanged")
            return
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        user_set_role(user=user, role=Role.ADMIN)
        user_change_record(user=user, before=None, actor=None)
        if generated:
            # Printed once: it is not stored anywhere in clear.
            self.stdout.write(f"admin user {username!r} created with password: {password}")
        else:
            self.stdout.write(f"admin user {username!r} created from DATADOG_ADMIN_PASSWORD")
