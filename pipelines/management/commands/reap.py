from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from pipelines.services import reap


class Command(BaseCommand):
    help = "Run one reaper pass (expired leases, lost messages, due retries)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(str(reap()))
