"""The ``prune`` management command: retention by hand, through ``call_command``.

What goes and what stays case by case is in test_retention; here the
command: its options, what it prints, and its audit event.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ActorKind, AuditEvent
from accounts.services import audit_record
from pipelines.models import Execution
from tests.pipelines.test_retention import old, rows_of

pytestmark = pytest.mark.usefixtures("isolated_cache")


def prune(*args: str) -> list[str]:
    out = StringIO()
    call_command("prune", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def aged_event(days: int) -> AuditEvent:
    event = audit_record(action="pipeline_update", details={"days": days})
    AuditEvent.objects.filter(pk=event.pk).update(at=timezone.now() - timedelta(days=days))
    return event


def test_a_dry_run_counts_and_deletes_nothing(owned: Any) -> None:
    runs = [old(owned, days=100), old(owned, days=95), old(owned, days=10)]
    event = aged_event(400)

    lines = prune("--dry-run")

    assert lines[0].startswith("executions ended before ") and lines[0].endswith("(90 days)")
    assert lines[1].startswith("audit events before ") and lines[1].endswith("(365 days)")
    assert lines[2] == (
        "would delete: 2 executions, 4 task runs, 6 transitions, 12 log lines, 1 audit events"
    )
    assert [rows_of(e)[0] for e in runs] == [1, 1, 1]
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    assert not AuditEvent.objects.filter(action="prune").exists()


def test_it_deletes_reports_and_audits(owned: Any) -> None:
    gone, kept = old(owned, days=100), old(owned, days=10)
    aged_event(400)

    lines = prune()

    assert (
        lines[2] == "deleted: 1 executions, 2 task runs, 3 transitions, 6 log lines, 1 audit events"
    )
    assert rows_of(gone) == (0, 0, 0, 0)
    assert rows_of(kept)[0] == 1
    event = AuditEvent.objects.get(action="prune")
    assert event.actor_kind == ActorKind.CLI
    assert event.details == {
        "days": 90,
        "audit_days": 365,
        "executions": 1,
        "task_runs": 2,
        "transitions": 3,
        "log_lines": 6,
        "audit_events": 1,
    }
    # Nothing left: nothing deleted, nothing audited.
    assert (
        prune()[2]
        == "deleted: 0 executions, 0 task runs, 0 transitions, 0 log lines, 0 audit events"
    )
    assert AuditEvent.objects.filter(action="prune").count() == 1


def test_days_and_batch_size_override_the_settings(owned: Any, settings: Any) -> None:
    settings.RETENTION_DAYS = 0
    settings.AUDIT_RETENTION_DAYS = 0
    runs = [old(owned, days=d, lines=1) for d in (40, 31, 29)]
    aged_event(100)

    assert prune()[:2] == [
        "executions ended: kept forever (RETENTION_DAYS=0)",
        "audit events: kept forever (AUDIT_RETENTION_DAYS=0)",
    ]
    assert Execution.objects.count() == 3

    lines = prune("--days", "30", "--audit-days", "50", "--batch-size", "1")
    assert (
        lines[2] == "deleted: 2 executions, 4 task runs, 6 transitions, 4 log lines, 1 audit events"
    )
    assert [rows_of(e)[0] for e in runs] == [0, 0, 1]


def test_it_says_what_holds_old_runs_back(owned: Any) -> None:
    old(owned, days=130)
    stuck = old(owned, "queued", days=120)
    old(owned, days=110)

    lines = prune()

    assert lines[2].startswith("deleted: 1 executions")
    assert lines[3] == (
        "kept: 1 finished executions past retention, not yet counted in the /metrics counter "
        f"base (execution {stuck.execution_id}, active since "
        f"{stuck.created_at:%Y-%m-%d %H:%M} UTC, holds the /metrics counter base back until "
        "it finishes)"
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["--days", "-3"], "argument --days: must be at least 1, got -3"),
        (["--audit-days", "soon"], "argument --audit-days: expected a whole number, got 'soon'"),
    ],
)
def test_bad_options_are_refused_by_name(args: list[str], error: str, db: Any) -> None:
    with pytest.raises(CommandError, match=error):
        prune(*args)
