"""Delete history past its retention now (the worker does the same in the background)."""

from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.utils import timezone

from accounts.commands import AuditedCommand
from accounts.services import audit_record
from pipelines.models import Execution
from pipelines.services.retention import (
    BATCH_SIZE,
    executions_past,
    prune,
    retention_cutoff,
)


def _at_least_one(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


class Command(AuditedCommand):
    help = (
        "Delete finished executions that ended more than RETENTION_DAYS ago (with their task "
        "runs, transitions and log lines) and audit events older than AUDIT_RETENTION_DAYS, "
        "in batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )
        parser.add_argument(
            "--batch-size",
            type=_at_least_one,
            default=BATCH_SIZE,
            help=f"executions (or audit events) per transaction (default {BATCH_SIZE})",
        )
        parser.add_argument(
            "--days", type=_at_least_one, help="executions' retention instead of RETENTION_DAYS"
        )
        parser.add_argument(
            "--audit-days",
            type=_at_least_one,
            help="audit events' retention instead of AUDIT_RETENTION_DAYS",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] or settings.RETENTION_DAYS
        audit_days = options["audit_days"] or settings.AUDIT_RETENTION_DAYS
        dry_run = options["dry_run"]
        now = timezone.now()
        result = prune(
            days=days,
            audit_days=audit_days,
            batch_size=options["batch_size"],
            dry_run=dry_run,
            now=now,
        )
        self.stdout.write(self._scope("executions ended", days, "RETENTION_DAYS", now))
        self.stdout.write(self._scope("audit events", audit_days, "AUDIT_RETENTION_DAYS", now))
        self.stdout.write(f"{'would delete' if dry_run else 'deleted'}: {result}")
        held = result.held_back if dry_run else 0
        if days and not dry_run:
            held = executions_past(retention_cutoff(days, now)).count()
        if held:
            self.stdout.write(self._held_back(held))
        if result.rows and not dry_run:
            audit_record(
                action="prune",
                details={
                    "days": days,
                    "audit_days": audit_days,
                    "executions": result.executions,
                    "task_runs": result.task_runs,
                    "transitions": result.transitions,
                    "log_lines": result.log_lines,
                    "audit_events": result.audit_events,
                },
            )

    @staticmethod
    def _scope(what: str, days: int, setting: str, now: Any) -> str:
        if not days:
            return f"{what}: kept forever ({setting}=0)"
        return f"{what} before {retention_cutoff(days, now):%Y-%m-%d %H:%M} UTC ({days} days)"

    @staticmethod
    def _held_back(count: int) -> str:
        oldest = Execution.objects.active().order_by("created_at").first()
        why = (
            f"execution {oldest.execution_id}, active since {oldest.created_at:%Y-%m-%d %H:%M} "
            "UTC, holds the /metrics counter base back until it finishes"
            if oldest is not None
            else "the /metrics counter base could not be read or stored (is the cache up?)"
        )
        return (
            f"kept: {count} finished executions past retention, not yet counted in the "
            f"/metrics counter base ({why})"
        )
