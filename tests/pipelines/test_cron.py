"""pipelines.cron: the intervals a schedule covers, in the pipeline's time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.cron import describe, intervals_between, next_tick, previous_tick


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_it_finds_the_tick_at_or_before_a_moment_at_minute_resolution() -> None:
    assert previous_tick("0 * * * *", utc(2026, 3, 1, 10, 0, 30)) == utc(2026, 3, 1, 10, 0)
    assert previous_tick("0 * * * *", utc(2026, 3, 1, 10, 59, 59)) == utc(2026, 3, 1, 10, 0)
    assert previous_tick("*/15 * * * *", utc(2026, 3, 1, 0, 14)) == utc(2026, 3, 1, 0, 0)
    assert previous_tick("0 2 * * *", utc(2026, 3, 1, 1, 0)) == utc(2026, 2, 28, 2, 0)


def test_it_finds_the_first_tick_strictly_after_a_moment() -> None:
    assert next_tick("0 * * * *", utc(2026, 3, 1, 10, 0)) == utc(2026, 3, 1, 11, 0)
    assert next_tick("0 * * * *", utc(2026, 3, 1, 9, 59, 59)) == utc(2026, 3, 1, 10, 0)


def test_it_reads_ticks_in_the_pipelines_time_zone_and_answers_in_utc() -> None:
    # 02:00 in Paris is 01:00 UTC in winter, 00:00 UTC in summer.
    assert next_tick("0 2 * * *", utc(2026, 1, 10, 12, 0), "Europe/Paris") == utc(2026, 1, 11, 1, 0)
    assert next_tick("0 2 * * *", utc(2026, 7, 10, 12, 0), "Europe/Paris") == utc(2026, 7, 11, 0, 0)
    tick = previous_tick("0 2 * * *", utc(2026, 7, 10, 12, 0), "Europe/Paris")
    assert tick == utc(2026, 7, 10, 0, 0) and tick.tzinfo == UTC


def test_a_day_is_23_hours_long_when_the_clocks_go_forward() -> None:
    # Paris moved from 02:00 CET to 03:00 CEST on 29 March 2026.
    (start, end), *_ = intervals_between(
        "0 0 * * *", utc(2026, 3, 28, 23, 0), utc(2026, 3, 28, 23, 0), "Europe/Paris"
    )
    assert (start, end) == (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0))


def test_it_lists_the_intervals_whose_start_is_a_tick_in_the_range() -> None:
    got = list(intervals_between("0 */6 * * *", utc(2026, 3, 1, 1, 0), utc(2026, 3, 1, 12, 0)))
    assert got == [
        (utc(2026, 3, 1, 6, 0), utc(2026, 3, 1, 12, 0)),
        (utc(2026, 3, 1, 12, 0), utc(2026, 3, 1, 18, 0)),
    ]
    # A first start on a tick counts; an empty range gives nothing.
    on_tick = list(intervals_between("0 */6 * * *", utc(2026, 3, 1, 6), utc(2026, 3, 1, 6)))
    assert on_tick == [(utc(2026, 3, 1, 6, 0), utc(2026, 3, 1, 12, 0))]
    assert list(intervals_between("0 */6 * * *", utc(2026, 3, 1, 7), utc(2026, 3, 1, 11))) == []


@pytest.mark.parametrize(
    ("schedule", "reading"),
    [
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("15 * * * *", "hourly at minute 15"),
        ("5 2 * * *", "daily at 02:05"),
        ("30 18 * * 1-5", "at 18:30 on weekdays 1-5"),
        ("0 0 1 * *", "0 0 1 * *"),
        ("0 */2 * * *", "0 */2 * * *"),
        ("@daily", "@daily"),
    ],
)
def test_it_describes_common_forms_in_english_and_others_as_written(
    schedule: str, reading: str
) -> None:
    assert describe(schedule) == reading
