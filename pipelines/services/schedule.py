"""Cron scheduling, catchup and backfill: executions per interval; asset-triggered runs.

Several workers may run the tick at once: the pipeline row is taken with
``skip_locked`` so one tick handles a pipeline at a time, and the unique
constraint on (pipeline, data_interval_start) for scheduled runs makes a
duplicate impossible even if two ticks overlapped.

A pipeline with ``schedule: {assets: [...]}`` gets one execution (trigger
``asset``) once every listed asset has had an event since its previous
asset-triggered execution was created (and since the pipeline exists). The
check runs in every tick and right after a task run records events; the
events an execution consumed are its ``triggered_by``, and the unique
constraint on (pipeline, event) makes a second execution for the same
events fail however many checks race.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts.actor import SYSTEM, Actor
from core.errors import InvalidInput
from pipelines import cron
from pipelines.assets.selectors import asset_events_pending
from pipelines.models import AssetEvent, AssetTrigger, Execution, Pipeline, Trigger
from pipelines.services.execution import execution_create

logger = logging.getLogger(__name__)

# A tick creates at most this many catch-up runs per pipeline; the next tick
# goes on, so a long outage does not stall the scheduler.
MAX_CATCHUP_PER_TICK = 50


def schedule_tick(*, now: datetime | None = None) -> int:
    """Create the scheduled executions that are due; returns how many."""
    now = now or timezone.now()
    created = 0
    for pipeline_id in Pipeline.objects.scheduled().values_list("pk", flat=True):
        created += _tick_pipeline(pipeline_id, now)
    for pipeline_id in Pipeline.objects.asset_scheduled().values_list("pk", flat=True):
        created += int(asset_check(pipeline_id) is not None)
    return created


def assets_trigger_after(events: list[AssetEvent]) -> int:
    """Check the pipelines waiting for the assets of ``events``, just recorded; how many ran.

    Called by the worker after the events committed, so a consumer starts
    without waiting for the next tick; a failure here is logged, and the
    tick checks again.
    """
    names = {event.asset.name for event in events}
    started = 0
    try:
        for pipeline_id, waits_for in Pipeline.objects.asset_scheduled().values_list(
            "pk", "schedule_assets"
        ):
            if names & set(waits_for):
                started += int(asset_check(pipeline_id) is not None)
    except Exception:
        logger.exception("asset-triggered runs not checked after %s", sorted(names))
    return started


def asset_check(pipeline_id: Any) -> Execution | None:
    """The asset-triggered execution of the pipeline if all its assets have new events."""
    try:
        with transaction.atomic():
            pipeline = (
                Pipeline.objects.select_for_update(skip_locked=True)
                .filter(pk=pipeline_id, enabled=True)
                .exclude(schedule_assets=[])
                .first()
            )
            if pipeline is None:
                return None  # paused, not asset-scheduled, or being checked by another tick
            events = asset_events_pending(pipeline)
            if set(pipeline.schedule_assets) - {event.asset.name for event in events}:
                return None  # some asset has had no event since
            execution = execution_create(pipeline=pipeline, trigger=Trigger.ASSET)
            AssetTrigger.objects.bulk_create(
                AssetTrigger(execution=execution, event=event, pipeline=pipeline)
                for event in events
            )
            return execution
    except IntegrityError:
        logger.info("the asset events of pipeline %s were consumed by another run", pipeline_id)
        return None


def _tick_pipeline(pipeline_id: Any, now: datetime) -> int:
    created = 0
    with transaction.atomic():
        pipeline = (
            Pipeline.objects.select_for_update(skip_locked=True)
            .filter(pk=pipeline_id, enabled=True)
            .exclude(schedule="")
            .first()
        )
        if pipeline is None:
            return 0
        schedule, tz = pipeline.schedule, pipeline.timezone
        start = pipeline.next_interval_start
        if start is None:
            # First sight of this schedule: the first run covers the interval
            # that starts at the latest tick, created when it ends.
            pipeline.next_interval_start = cron.previous_tick(schedule, now, tz)
            pipeline.save(update_fields=["next_interval_start"])
            return 0
        due: list[tuple[datetime, datetime]] = []
        while len(due) < MAX_CATCHUP_PER_TICK:
            end = cron.next_tick(schedule, start, tz)
            if end > now:
                break
            due.append((start, end))
            start = end
        if not due:
            return 0
        if not pipeline.catchup:
            due = due[-1:]  # only the latest completed interval
        for interval in due:
            try:
                with transaction.atomic():
                    execution_create(pipeline=pipeline, trigger=Trigger.SCHEDULE, interval=interval)
                created += 1
            except IntegrityError:
                logger.info("interval %s of %s already has a run", interval[0], pipeline.name)
        pipeline.next_interval_start = start
        pipeline.save(update_fields=["next_interval_start"])
    return created


def pipeline_backfill(
    *,
    pipeline: Pipeline,
    start: datetime,
    end: datetime,
    actor: Actor = SYSTEM,
    limit: int = 1000,
) -> list[Execution]:
    """One execution per cron interval starting in [start, end] (both inclusive)."""
    if not pipeline.schedule:
        why = "a backfill needs a cron schedule"
        if pipeline.schedule_assets:
            why += " (this pipeline runs when its assets have events)"
        raise InvalidInput("pipeline has no cron schedule", [("schedule", why)])
    if end < start:
        raise InvalidInput("invalid range", [("end", "must not be before start")])
    intervals = []
    for interval in cron.intervals_between(pipeline.schedule, start, end, pipeline.timezone):
        intervals.append(interval)
        if len(intervals) > limit:
            raise InvalidInput("range too large", [("end", f"more than {limit} intervals")])
    with transaction.atomic():
        return [
            execution_create(
                pipeline=pipeline,
                trigger=Trigger.BACKFILL,
                interval=interval,
                actor=actor,
            )
            for interval in intervals
        ]


def parse_when(text: str, *, end: bool) -> datetime:
    """An ISO date or datetime; a date as end means the whole day."""
    # A bare date first: parse_datetime would read it as midnight.
    day = parse_date(text) if len(text.strip()) == 10 else None
    if day is not None:
        moment = (
            datetime(day.year, day.month, day.day, 23, 59, 59, 999999)
            if end
            else datetime(day.year, day.month, day.day)
        )
    else:
        parsed = parse_datetime(text)
        if parsed is None:
            raise ValueError(f"{text!r} is not an ISO date or datetime")
        moment = parsed
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
