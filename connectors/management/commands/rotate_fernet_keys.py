"""Re-encrypt every connection's secrets with the first key of FERNET_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from connectors import crypto
from connectors.models import Connection


class Command(BaseCommand):
    help = "Re-encrypt connection secrets with the first FERNET_KEYS key (then drop old keys)."

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            for conn in Connection.objects.select_for_update().exclude(secrets=""):
                conn.secrets = crypto.rotate(conn.secrets)
                conn.save(update_fields=["secrets"])
                count += 1
        self.stdout.write(f"re-encrypted {count} connection(s) with the first key")
