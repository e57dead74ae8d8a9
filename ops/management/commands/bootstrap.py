"""Migrate, create the role groups and the first admin. Safe to run again.

In ``ops``, not ``accounts``: it also schedules the pipelines' maintenance
task, and only a layer above both may import both.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.commands import AuditedCommand
from accounts.permissions import Role
from accounts.services import roles_setup, user_change_record, user_set_role
from core.known_secrets import is_known_secret
from pipelines.tasks import maintain_schedule_ensure

# Passwords .env.example / docker-compose.yml publish that settings cannot
# see (they are not the app's): the first admin's, and Grafana's, which
# docker-compose.yml hands to this command too so that its start (every
# other service waits for it) refuses a published one.
PUBLISHED_PASSWORD_VARIABLES = ("DATADOG_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


def published_passwords() -> list[str]:
    """The variables of PUBLISHED_PASSWORD_VARIABLES set to a published placeholder."""
    return [
        name
        for name in PUBLISHED_PASSWORD_VARIABLES
        if os.environ.get(name) and is_known_secret(os.environ[name])
    ]


class Command(AuditedCommand):
    help = "Migrate, create roles and the first admin (DATADOG_ADMIN_USER / _PASSWORD)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--noinput", action="store_true", help="never prompt")

    def handle(self, *args: Any, **options: Any) -> None:
        # SECRET_KEY, FERNET_KEYS and the database password were refused by
        # settings already (SPEC §10); production refuses these two as well.
        published = published_passwords() if settings.DATABASE_URL is not None else []
        if published:
            raise CommandError(
                "; ".join(
                    f"{name}: is a published placeholder; set a password of your own"
                    for name in published
                )
            )
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
        user_change_record(user=user, before=None)
        if generated:
            # Printed once: it is not stored anywhere in clear.
            self.stdout.write(f"admin user {username!r} created with password: {password}")
        else:
            self.stdout.write(f"admin user {username!r} created from DATADOG_ADMIN_PASSWORD")
