"""Operations a click away (SPEC §6): backfill with a preview, a run's history, bulk actions.

Like ``pipelines.views``: fetch for the action (``pipeline_for`` /
``execution_for``, i.e. ``accounts.permissions.get_for``), call the service
the API calls (audited there), render.
"""

from __future__ import annotations

from datetime import datetime
from itertools import islice
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.actor import Actor
from accounts.permissions import Action, can
from core.errors import InvalidInput, NotFound, ServiceError
from core.ui import form_errors_from, render_ui, ui_view
from pipelines import cron
from pipelines.models import (
    EXECUTION_FINISHED,
    Execution,
    ExecutionStatus,
    Pipeline,
    TaskRunStatus,
    Transition,
)
from pipelines.selectors import execution_for, pipeline_for
from pipelines.services import execution_cancel, execution_rerun, pipeline_backfill
from pipelines.services.schedule import parse_when

# At most this many runs per backfill (the service refuses more).
BACKFILL_LIMIT = 1000
# The preview lists this many intervals, then the last one.
PREVIEW_SHOWN = 30
# The run page shows at most this many transitions (the latest).
HISTORY_LIMIT = 500
# At most this many runs in one bulk action.
BULK_LIMIT = 100

# ---------------------------------------------------------------- backfill


class BackfillForm(forms.Form):
    start = forms.CharField(
        label="From",
        max_length=40,
        help_text="A date or datetime, UTC.",
        widget=forms.TextInput(attrs={"placeholder": "2026-01-01", "autocomplete": "off"}),
    )
    end = forms.CharField(
        label="To (inclusive)",
        max_length=40,
        help_text="A date: the whole day.",
        widget=forms.TextInput(attrs={"placeholder": "2026-01-31", "autocomplete": "off"}),
    )

    def _moment(self, name: str) -> datetime:
        try:
            return parse_when(self.cleaned_data[name], end=name == "end")
        except ValueError:
            raise forms.ValidationError(
                "not a date (2026-01-31) or a datetime (2026-01-31T06:00)"
            ) from None

    def clean_start(self) -> datetime:
        return self._moment("start")

    def clean_end(self) -> datetime:
        return self._moment("end")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "start" in data and "end" in data and data["end"] < data["start"]:
            self.add_error("end", "must not be before the start")
        return data


def _intervals(pipeline: Pipeline, start: datetime, end: datetime) -> list[tuple[Any, Any]]:
    """The intervals a backfill of [start, end] creates, one more than the limit at most."""
    found = cron.intervals_between(pipeline.schedule, start, end, pipeline.timezone)
    return list(islice(found, BACKFILL_LIMIT + 1))


def _as_previewed(request: HttpRequest, intervals: list[tuple[Any, Any]]) -> bool:
    """Whether the range still gives the intervals its preview showed (same count, same first).

    A create without a preview (``expect`` absent: a script, the form without
    JavaScript) is taken as it is.
    """
    expect = request.POST.get("expect")
    return expect is None or expect == f"{len(intervals)}@{intervals[0][0].isoformat()}"


def _field_of(path: str) -> str | None:
    return path if path in ("start", "end") else None


@ui_view
@require_http_methods(["GET", "POST"])
def pipeline_backfill_view(request: HttpRequest, pipeline_id: Any) -> HttpResponse:
    """GET: the form. POST ``op=preview``: the intervals it makes; ``op=create``: the runs."""
    pipeline = pipeline_for(request.user, pipeline_id, Action.OPERATE)
    form = BackfillForm(request.POST if request.method == "POST" else None, prefix="backfill")
    preview: dict[str, Any] | None = None
    status = 200
    if request.method == "POST":
        status = 400
        if not pipeline.schedule:
            form.add_error(None, "a backfill needs a cron schedule")
        elif form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            intervals = _intervals(pipeline, start, end)
            if len(intervals) > BACKFILL_LIMIT:
                form.add_error("end", f"more than {BACKFILL_LIMIT} intervals; pick a shorter range")
            elif not intervals:
                form.add_error("end", "no interval of the schedule starts in this range")
            elif request.POST.get("op") == "create" and _as_previewed(request, intervals):
                try:
                    runs = pipeline_backfill(
                        pipeline=pipeline,
                        start=start,
                        end=end,
                        actor=Actor.from_request(request),
                        limit=BACKFILL_LIMIT,
                    )
                except InvalidInput as exc:
                    form_errors_from(form, exc, _field_of)
                else:
                    messages.success(
                        request, f"Backfill of {pipeline.name}: {len(runs)} runs created."
                    )
                    url = reverse("execution_list") + "?" + urlencode({"pipeline": pipeline.name})
                    if getattr(request, "htmx", False):
                        return HttpResponseClientRedirect(url)
                    return redirect(url)
            else:
                if request.POST.get("op") == "create":
                    form.add_error(None, "the range changed since its preview: check it again")
                status = 200
                preview = {
                    "count": len(intervals),
                    "shown": intervals[:PREVIEW_SHOWN],
                    "last": intervals[-1] if len(intervals) > PREVIEW_SHOWN else None,
                    "more": len(intervals) - PREVIEW_SHOWN - 1,
                    "start": start,
                    "end": end,
                }
    context = {
        "nav": "pipelines",
        "pipeline": pipeline,
        "backfill_form": form,
        "preview": preview,
        "schedule_words": cron.describe(pipeline.schedule) if pipeline.schedule else "",
    }
    return render_ui(
        request, "pipelines/backfill.html", context, fragment="backfill", status=status
    )


# ---------------------------------------------------------------- a run's history

_ATTEMPT_ENDS = {
    TaskRunStatus.SUCCESS,
    TaskRunStatus.FAILED,
    TaskRunStatus.UP_FOR_RETRY,
    TaskRunStatus.CANCELLED,
    TaskRunStatus.WAITING,
}


def _attempts(transitions: list[Transition]) -> list[dict[str, Any]]:
    """Each task attempt (a claim by a worker) with its end and its error, in order."""
    attempts: dict[tuple[str, int], dict[str, Any]] = {}
    for row in transitions:
        if row.task_run is None or not row.attempt:
            continue
        key = (row.task_run.task_name, row.attempt)
        if row.to_status == TaskRunStatus.RUNNING:
            attempts[key] = {
                "task": key[0],
                "attempt": row.attempt,
                "worker": row.actor,
                "started_at": row.at,
                "ended_at": None,
                "outcome": TaskRunStatus.RUNNING,
                "error": "",
            }
        elif key in attempts and row.to_status in _ATTEMPT_ENDS:
            ended = attempts[key]
            ended["ended_at"], ended["outcome"] = row.at, row.to_status
            if row.to_status != TaskRunStatus.SUCCESS:
                ended["error"] = row.reason
    return sorted(attempts.values(), key=lambda a: (a["started_at"], a["task"]))


@ui_view
@require_GET
def execution_history(request: HttpRequest, execution_id: Any) -> HttpResponse:
    """Who moved what, when and why (the transitions), and each task's attempts with errors."""
    execution = execution_for(request.user, execution_id)
    task = (request.GET.get("task") or "").strip()[:100] or None
    rows = Transition.objects.filter(execution=execution).select_related("task_run")
    if task is not None:
        rows = rows.filter(task_run__task_name=task)
    total = rows.count()
    latest = list(rows.order_by("-at", "-id")[:HISTORY_LIMIT])
    latest.reverse()
    context = {
        "nav": "runs",
        "execution": execution,
        "pipeline": execution.pipeline,
        "transitions": latest,
        "attempts": _attempts(latest),
        "total": total,
        "limit": HISTORY_LIMIT,
        "task": task,
        "finished": execution.status in EXECUTION_FINISHED,
        "poll": 3,
    }
    return render_ui(request, "pipelines/history.html", context, fragment="history")


# ---------------------------------------------------------------- bulk actions on runs

BULK_ACTIONS = {"cancel": "Cancel", "rerun": "Rerun failed tasks"}
DONE, WILL_DO = "done", "will be done"
NOT_ALLOWED, WRONG_STATE, NOT_FOUND = "not allowed", "not in a state for that", "not found"


def _state_ok(execution: Execution, action: str) -> bool:
    if action == "cancel":
        return execution.status in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING)
    return execution.status in EXECUTION_FINISHED and execution.status != ExecutionStatus.SUCCESS


def _bulk_item(request: HttpRequest, run_id: str, action: str, *, apply: bool) -> dict[str, Any]:
    """One selected run: what the action would do (``apply`` False) or did to it."""
    item: dict[str, Any] = {
        "id": run_id,
        "execution": None,
        "result": "",
        "detail": "",
        "new": None,
    }
    try:
        execution = execution_for(request.user, run_id)
    except NotFound:
        item["result"] = NOT_FOUND
        return item
    item["execution"] = execution
    if not can(request.user, Action.OPERATE, execution.pipeline):
        item["result"] = NOT_ALLOWED
        return item
    if not _state_ok(execution, action):
        item["result"], item["detail"] = WRONG_STATE, execution.status
        return item
    if not apply:
        item["result"] = WILL_DO
        return item
    actor = Actor.from_request(request)
    try:
        if action == "cancel":
            execution_cancel(execution=execution, actor=actor, reason="cancelled in the UI (bulk)")
        else:
            item["new"] = execution_rerun(execution=execution, from_task=None, actor=actor)
    except ServiceError as exc:
        item["result"], item["detail"] = WRONG_STATE, exc.detail
        return item
    item["result"] = DONE
    return item


@ui_view
@require_POST
def execution_bulk(request: HttpRequest) -> HttpResponse:
    """Selected runs → a confirmation listing what will happen to each → per-run results."""
    action = request.POST.get("action", "")
    ids = list(dict.fromkeys(request.POST.getlist("run")))
    errors = []
    if action not in BULK_ACTIONS:
        errors.append(("action", f"one of {', '.join(BULK_ACTIONS)}"))
    if not ids:
        errors.append(("run", "select at least one run"))
    elif len(ids) > BULK_LIMIT:
        errors.append(("run", f"at most {BULK_LIMIT} runs at once"))
    if errors:
        raise InvalidInput("nothing to do", errors)
    apply = request.POST.get("confirm") == "yes"
    items = [_bulk_item(request, run_id, action, apply=apply) for run_id in ids]
    context = {
        "nav": "runs",
        "action": action,
        "action_label": BULK_ACTIONS[action],
        "items": items,
        "applied": apply,
        "actionable": sum(item["result"] == WILL_DO for item in items),
        "done": sum(item["result"] == DONE for item in items),
    }
    return render_ui(request, "pipelines/bulk.html", context)
