"""One reaper pass by hand; what it changed is audited (the scheduled pass is not)."""

from __future__ import annotations

from typing import Any

from accounts.commands import AuditedCommand
from accounts.services import audit_record
from pipelines.engine.reaper import reap
from pipelines.tasks import abandoned_sweep

# Task run ids named in the audit event at most (the counts are always whole).
AUDIT_IDS = 100


class Command(AuditedCommand):
    help = "Run one reaper pass (expired leases, lost messages, due retries and sensor checks)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = reap()
        abandoned_sweep(result.abandoned)
        # The scheduled pass runs every minute and its moves are already in
        # each task run's transition rows; a pass started by hand is someone's
        # action on runs, so it is audited when it changed any.
        if result.expired or result.requeued or result.retried or result.advanced or result.started:
            audit_record(
                action="reap",
                details={
                    "expired": result.expired[:AUDIT_IDS],
                    "requeued": result.requeued[:AUDIT_IDS],
                    "retried": result.retried[:AUDIT_IDS],
                    "counts": {
                        "expired": len(result.expired),
                        "requeued": len(result.requeued),
                        "retried": len(result.retried),
                        "advanced": result.advanced,
                        "started": result.started,
                    },
                },
            )
        self.stdout.write(str(result))
