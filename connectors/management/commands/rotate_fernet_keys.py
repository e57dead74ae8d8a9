"""Re-encrypt every connection's secrets with the first key of FERNET_KEYS."""

from __future__ import annotations

from typing import Any

from accounts.commands import AuditedCommand
from connectors.services import connection_secrets_rotate


class Command(AuditedCommand):
    help = "Re-encrypt connection secrets with the first FERNET_KEYS key (then drop old keys)."

    def handle(self, *args: Any, **options: Any) -> None:
        count = connection_secrets_rotate()
        self.stdout.write(f"re-encrypted {count} connection(s) with the first key")
