"""Cron intervals in a pipeline's time zone. Imports no Django.

A scheduled run covers one interval [start, end) between two cron ticks
and is created once ``end`` has passed (Airflow's data-interval model).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter


def _iter(schedule: str, start: datetime, tz: str) -> croniter:
    return croniter(schedule, start.astimezone(ZoneInfo(tz)))


def previous_tick(schedule: str, at: datetime, tz: str = "UTC") -> datetime:
    """The latest tick at or before ``at``."""
    # Cron has minute resolution: 00:00:30 is in the 00:00 tick.
    minute = at.astimezone(UTC).replace(second=0, microsecond=0)
    if croniter.match(schedule, minute.astimezone(ZoneInfo(tz))):
        return minute
    return _iter(schedule, minute, tz).get_prev(datetime).astimezone(UTC)


def next_tick(schedule: str, after: datetime, tz: str = "UTC") -> datetime:
    """The first tick strictly after ``after``."""
    return _iter(schedule, after, tz).get_next(datetime).astimezone(UTC)


def intervals_between(
    schedule: str, first_start: datetime, last_start: datetime, tz: str = "UTC"
) -> Iterator[tuple[datetime, datetime]]:
    """Intervals whose start is a tick within [first_start, last_start]."""
    start = previous_tick(schedule, first_start, tz)
    if start < first_start:
        start = next_tick(schedule, start, tz)
    while start <= last_start:
        end = next_tick(schedule, start, tz)
        yield start, end
        start = end


def describe(schedule: str) -> str:
    """A short English reading of common cron forms, else the expression."""
    fields = schedule.split()
    if len(fields) != 5:
        return schedule
    minute, hour, dom, month, dow = fields
    if fields == ["*"] * 5:
        return "every minute"
    if minute.startswith("*/") and hour == dom == month == dow == "*":
        return f"every {minute[2:]} minutes"
    if minute.isdigit() and hour == dom == month == dow == "*":
        return f"hourly at minute {minute}"
    if minute.isdigit() and hour.isdigit() and dom == month == "*":
        when = f"{int(hour):02d}:{int(minute):02d}"
        if dow == "*":
            return f"daily at {when}"
        return f"at {when} on weekdays {dow}"
    return schedule
