"""Create one execution per cron interval starting in [--start, --end]."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from datadog_web.errors import ServiceError
from pipelines.models import Pipeline
from pipelines.services import pipeline_backfill


def parse_when(text: str, *, end: bool) -> datetime:
    """An ISO date or datetime; a date as end means the whole day."""
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise ValueError(f"{text!r} is not an ISO date or datetime")
        moment = datetime(day.year, day.month, day.day, 23, 59, 59) if end else datetime(
            day.year, day.month, day.day
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


class Command(BaseCommand):
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
            self.stdout.write(f"{execution.pk} {execution.data_interval_start.isoformat()}")
        self.stdout.write(f"{len(executions)} execution(s) created")
