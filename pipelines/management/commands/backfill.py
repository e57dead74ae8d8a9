"""Create one execution per cron interval starting in [--start, --end]."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from accounts.commands import AuditedCommand
from core.errors import ServiceError
from pipelines.models import Pipeline
from pipelines.services.schedule import parse_when, pipeline_backfill


class Command(AuditedCommand):
    help = "Backfill a scheduled pipeline over a range of intervals."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--start", required=True)
        parser.add_argument("--end", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        pipeline = Pipeline.objects.filter(name=options["name"]).first()
        if pipeline is None:
            raise CommandError(f"unknown pipeline {options['name']!r}")
        try:
            start = parse_when(options["start"], end=False)
            end = parse_when(options["end"], end=True)
            executions = pipeline_backfill(pipeline=pipeline, start=start, end=end)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        for execution in executions:
            start_at = execution.data_interval_start
            self.stdout.write(f"{execution.pk} {start_at.isoformat() if start_at else '-'}")
        self.stdout.write(f"{len(executions)} execution(s) created")
