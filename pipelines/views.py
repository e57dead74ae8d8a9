"""HTML pages for pipelines and their runs (SPEC §6).

Each view: fetch for the action (``pipeline_for``/``execution_for``, i.e.
``accounts.permissions.get_for``: 404 for what the user may not see, 403 for
what they may see but not do), call one service, render. Graph and
timeline geometry comes from ``pipelines.layout``; the templates draw it.
"""

from __future__ import annotations

import difflib
import json
import re
from datetime import datetime, timedelta
from typing import Any

import yaml
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_http_methods, require_POST

from accounts.actor import Actor
from accounts.forms import ShareForm
from accounts.permissions import Action, can, can_create, require_create, visible
from accounts.services import sharing_get
from connectors.models import Connection
from core.errors import InvalidInput, NotFound, ServiceError
from core.ui import PAGE_SIZE, paginate, query_without_page, render_ui, ui_view
from pipelines import cron, definition
from pipelines.assets.selectors import pipeline_waits_for
from pipelines.forms import (
    NEW_PIPELINE_TEMPLATE,
    CopyTaskForm,
    DiffForm,
    EditorForm,
    ExecutionFilterForm,
    PipelineFilterForm,
    RunForm,
)
from pipelines.layout import dag_graph, definition_tasks, gantt, in_graph_order, worst_status
from pipelines.models import (
    EXECUTION_ACTIVE,
    EXECUTION_FINISHED,
    TASK_ACTIVE,
    Execution,
    ExecutionStatus,
    Pipeline,
    PipelineVersion,
    Trigger,
)
from pipelines.queue import queue_depth
from pipelines.selectors import (
    count_bounded,
    definition_for,
    execution_for,
    execution_list_visible,
    pipeline_for,
    pipeline_list_visible,
    task_log,
    task_run_get,
    task_runs_of,
    watermark_list,
)
from pipelines.services import (
    execution_cancel,
    execution_create,
    execution_rerun,
    pipeline_create,
    pipeline_delete,
    pipeline_set_enabled,
    pipeline_update,
    pipeline_validate,
    watermark_reset,
)

# Live pages poll this often (seconds) while a run is active.
POLL_SECONDS = 1

# ---------------------------------------------------------------- dashboard


@ui_view
def dashboard(request: HttpRequest) -> HttpResponse:
    """Runs today, success rate over 7 days, running now, recent failures, queue depth."""
    now = timezone.now()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    week_ago = now - timedelta(days=7)
    runs = execution_list_visible(request.user)
    # Only the week's runs and the active ones are read (two index ranges),
    # not the whole history: a million rows took a second.
    recent = runs.filter(
        Q(created_at__gte=min(today, week_ago)) | Q(status__in=EXECUTION_ACTIVE)
    ).order_by()
    stats = recent.aggregate(
        today=Count("pk", filter=Q(created_at__gte=today)),
        finished=Count("pk", filter=Q(created_at__gte=week_ago, status__in=EXECUTION_FINISHED)),
        succeeded=Count("pk", filter=Q(created_at__gte=week_ago, status=ExecutionStatus.SUCCESS)),
        failed=Count("pk", filter=Q(created_at__gte=week_ago, status=ExecutionStatus.FAILED)),
        active=Count("pk", filter=Q(status__in=EXECUTION_ACTIVE)),
    )
    rate = round(100 * stats["succeeded"] / stats["finished"], 1) if stats["finished"] else None
    context = {
        "nav": "dashboard",
        "stats": stats,
        "success_rate": rate,
        "running": list(runs.active()[:10]),
        "failures": list(runs.filter(status=ExecutionStatus.FAILED)[:10]),
        "queue_depth": queue_depth(),
        "poll": POLL_SECONDS * 5,
    }
    return render_ui(request, "pipelines/dashboard.html", context, fragment="live")


# ---------------------------------------------------------------- pipelines


def _next_run(pipeline: Pipeline, now: datetime) -> datetime | None:
    if not (pipeline.enabled and pipeline.schedule):
        return None
    try:
        return cron.next_tick(pipeline.schedule, now, pipeline.timezone)
    except Exception:  # a schedule the validator let through must not break the list
        return None


@ui_view
def pipeline_list(request: HttpRequest) -> HttpResponse:
    """Pipelines the user may see: search, tag, status and state filters; paginated."""
    tags = sorted(
        {
            tag
            for row in visible(request.user, Pipeline.objects.all()).values_list("tags", flat=True)
            for tag in (row or [])
        }
    )
    form = PipelineFilterForm(request.GET or None, tags=tags)
    data = form.cleaned_data if form.is_valid() else {}
    status = data.get("status") or None
    enabled = {"yes": True, "no": False}.get(data.get("enabled") or "")
    pipelines = pipeline_list_visible(
        request.user,
        tag=data.get("tag") or None,
        enabled=enabled,
        search=data.get("q") or None,
        last_status=status if status != "never" else None,
    )
    if status == "never":
        # last_status is an annotation from the selector, unknown to mypy.
        pipelines = pipelines.filter(last_status__isnull=True)  # type: ignore[misc]
    page = paginate(request, pipelines)
    now = timezone.now()
    for pipeline in page:
        pipeline.next_run = _next_run(pipeline, now)  # type: ignore[attr-defined]
        pipeline.schedule_words = cron.describe(pipeline.schedule) if pipeline.schedule else ""  # type: ignore[attr-defined]
    context = {
        "nav": "pipelines",
        "form": form,
        "page": page,
        "query": query_without_page(request),
        "can_create": can_create(request.user),
    }
    return render_ui(request, "pipelines/list.html", context, fragment="results")


def _last_run_statuses(pipeline: Pipeline) -> tuple[Execution | None, dict[str, str]]:
    last = Execution.objects.filter(pipeline=pipeline).order_by("-created_at").first()
    if last is None:
        return None, {}
    by_task: dict[str, list[str]] = {}
    for name, status in last.tasks.values_list("definition_task", "status"):
        by_task.setdefault(name, []).append(status)
    return last, {name: worst_status(statuses) for name, statuses in by_task.items()}


def _pipeline_context(request: HttpRequest, pipeline: Pipeline, **extra: Any) -> dict[str, Any]:
    """Everything the pipeline page shows; forms may be passed bound in ``extra``."""
    user = request.user
    last, statuses = _last_run_statuses(pipeline)
    tasks = definition_tasks(pipeline.definition)
    versions = list(
        PipelineVersion.objects.filter(pipeline=pipeline)
        .select_related("created_by")
        .order_by("-version")[:100]
    )
    numbers = [v.version for v in versions]
    diff_initial = {
        "a": numbers[1] if len(numbers) > 1 else pipeline.version,
        "b": pipeline.version,
    }
    can_share = can(user, Action.SHARE, pipeline)
    context = {
        "nav": "pipelines",
        "pipeline": pipeline,
        "can_operate": can(user, Action.OPERATE, pipeline),
        "can_change": can(user, Action.CHANGE, pipeline),
        "can_share": can_share,
        "watermarks": watermark_list(pipeline),
        "last_run": last,
        "graph": dag_graph(tasks, statuses),
        "task_count": len(tasks),
        "schedule_words": cron.describe(pipeline.schedule) if pipeline.schedule else "",
        "next_run": _next_run(pipeline, timezone.now()),
        "versions": versions,
        "diff_form": DiffForm(initial=diff_initial, versions=numbers),
        "recent_runs": list(execution_list_visible(user, pipeline=pipeline)[:10]),
        "run_form": RunForm(parameters=pipeline.parameters or {}),
        "share_form": ShareForm(),
        "share_help": "view: sees it, its runs and logs; operate: also runs, cancels and "
        "reruns; edit: also changes and deletes it.",
        "sharing": sharing_get(pipeline) if can_share else None,
        "poll": POLL_SECONDS * 3,
        "waits_for": pipeline_waits_for(user, pipeline),
    }
    context.update(extra)
    return context


@ui_view
def pipeline_detail(request: HttpRequest, pipeline_id: Any) -> HttpResponse:
    pipeline = pipeline_for(request.user, pipeline_id)
    return render_ui(
        request, "pipelines/detail.html", _pipeline_context(request, pipeline), fragment="graph"
    )


@ui_view
@require_POST
def pipeline_run(request: HttpRequest, pipeline_id: Any) -> HttpResponse:
    """Run now with the parameters of the Run form; then watch the run."""
    pipeline = pipeline_for(request.user, pipeline_id, Action.OPERATE)
    form = RunForm(request.POST, parameters=pipeline.parameters or {})
    if form.is_valid():
        try:
            execution = execution_create(
                pipeline=pipeline,
                trigger=Trigger.MANUAL,
                parameters=form.overrides(),
                actor=Actor.from_request(request),
            )
        except InvalidInput as exc:
            for error in exc.errors:
                name = error["path"].removeprefix("parameters.")
                field = f"param_{name}" if f"param_{name}" in form.fields else None
                form.add_error(field, error["message"])
        else:
            return redirect("execution_detail", execution_id=execution.pk)
    context = _pipeline_context(request, pipeline, run_form=form)
    return render_ui(request, "pipelines/detail.html", context, status=400)


@ui_view
@require_POST
def pipeline_enable(request: HttpRequest, pipeline_id: Any) -> HttpResponse:
    """Enable or pause the pipeline (a new version)."""
    pipeline = pipeline_for(request.user, pipeline_id, Action.CHANGE)
    enabled = request.POST.get("enabled") == "true"
    pipeline_set_enabled(pipeline=pipeline, enabled=enabled, actor=Actor.from_request(request))
    messages.success(request, f"Pipeline {'enabled' if enabled else 'disabled'}.")
    return redirect("pipeline_detail", pipeline_id=pipeline.pk)


def share_refused(request: HttpRequest, pipeline: Pipeline, form: ShareForm) -> HttpResponse:
    """The pipeline page with the sharing form's errors (``accounts.views.share_view``)."""
    context = _pipeline_context(request, pipeline, share_form=form)
    return render_ui(request, "pipelines/detail.html", context, status=400)


@ui_view
@require_http_methods(["GET", "POST"])
def pipeline_delete_view(request: HttpRequest, pipeline_id: Any) -> HttpResponse:
    """GET asks for confirmation; POST deletes the pipeline with its runs."""
    pipeline = pipeline_for(request.user, pipeline_id, Action.CHANGE)
    if request.method == "POST":
        name = pipeline.name
        pipeline_delete(pipeline=pipeline, actor=Actor.from_request(request))
        messages.success(request, f"Pipeline {name} deleted.")
        return redirect("pipeline_list")
    context = {"nav": "pipelines", "pipeline": pipeline, "run_count": pipeline.executions.count()}
    return render_ui(request, "pipelines/delete.html", context)


@ui_view
@require_http_methods(["GET", "POST"])
def pipeline_watermark_reset(
    request: HttpRequest, pipeline_id: Any, task_name: str
) -> HttpResponse:
    """GET asks for confirmation; POST forgets the task's watermark (SPEC §9)."""
    pipeline = pipeline_for(request.user, pipeline_id, Action.CHANGE)
    mark = watermark_list(pipeline).get(task_name)
    if mark is None:
        raise NotFound(f"task '{task_name}' has no watermark")
    if request.method == "POST":
        watermark_reset(pipeline=pipeline, task_name=task_name, actor=Actor.from_request(request))
        messages.success(request, f"Watermark of {task_name} reset: its next run copies every row.")
        return redirect("pipeline_detail", pipeline_id=pipeline.pk)
    context = {"nav": "pipelines", "pipeline": pipeline, "task_name": task_name, "mark": mark}
    return render_ui(request, "pipelines/watermark_reset.html", context)


def _diff_lines(old: str, new: str, old_name: str, new_name: str) -> list[tuple[str, str]]:
    """Unified diff as (css class, line) pairs."""
    lines = []
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_name, new_name, lineterm="", n=3
    ):
        kind = ""
        if line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+") and not line.startswith("+++"):
            kind = "add"
        elif line.startswith("-") and not line.startswith("---"):
            kind = "del"
        lines.append((kind, line))
    return lines


@ui_view
def pipeline_diff(request: HttpRequest, pipeline_id: Any) -> HttpResponse:
    """The difference between two versions of the definition (YAML, unified diff)."""
    pipeline = pipeline_for(request.user, pipeline_id)
    numbers = list(pipeline.versions.order_by("-version").values_list("version", flat=True))
    form = DiffForm(request.GET or None, versions=numbers)
    if not form.is_valid():
        raise InvalidInput("pick two versions", [(k, str(v[0])) for k, v in form.errors.items()])
    a, b = form.cleaned_data["a"], form.cleaned_data["b"]
    found = {v.version: v for v in pipeline.versions.filter(version__in=[a, b])}
    old, new = (
        definition.dump_yaml(definition_for(request.user, pipeline, found[n].definition))
        for n in (a, b)
    )
    context = {
        "nav": "pipelines",
        "pipeline": pipeline,
        "a": a,
        "b": b,
        "diff": _diff_lines(old, new, f"v{a}", f"v{b}"),
        "diff_form": form,
    }
    return render_ui(request, "pipelines/diff.html", context, fragment="diff")


# ---------------------------------------------------------------- editor

# Tasks the editor's live preview draws at most.
PREVIEW_TASKS = 200

_PATH_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def line_of(text: str, path: str) -> int | None:
    """The 1-based line of ``path`` (``tasks[1].depends_on[0]``) in YAML or JSON ``text``."""
    return lines_of(text, [path])[0]


def lines_of(text: str, paths: list[str], root: yaml.Node | None = None) -> list[int | None]:
    """The 1-based line of each path in YAML or JSON ``text`` (None: no line).

    Walks YAML's node tree (which keeps positions; JSON parses as YAML too):
    ``root`` when the caller has it from the parse (``definition.parse_document``),
    else composed once for all paths by libyaml (``definition.compose_yaml``) —
    composing a 1 MiB text per problem was the cost of a request. Stops at the deepest
    node that exists, so "unknown key" errors point at the key and
    "required" errors at the object that misses it.
    """
    if not any(paths):
        return [None] * len(paths)
    if root is None:
        root = definition.compose_yaml(text)
    return [_line_in(root, path) if root is not None and path else None for path in paths]


def _line_in(node: yaml.Node, path: str) -> int:
    line = node.start_mark.line
    for index, key in _PATH_TOKEN.findall(path):
        if index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line
        elif key and isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            line = match[0].start_mark.line
            node = match[1]
        else:
            break
    return line + 1


def _with_lines(
    text: str, errors: list[dict[str, Any]], root: yaml.Node | None = None
) -> list[dict[str, Any]]:
    """``errors`` (``{path, message}``) each with the ``line`` of its path in ``text``."""
    lines = lines_of(text, [e["path"] for e in errors], root)
    return [{**e, "line": line} for e, line in zip(errors, lines, strict=True)]


# What the editor shows after checking a text: the parsed data (None when it
# does not parse), the normalized definition (None when invalid) and the
# problems, each with its line.
Checked = tuple[Any, dict[str, Any] | None, list[dict[str, Any]]]


def _parse_problems(exc: definition.DefinitionError) -> list[dict[str, Any]]:
    # A parse error names its line in its message.
    return [{"path": p.path, "message": p.message, "line": None} for p in exc.problems]


def _check_text(text: str, fmt: str | None, user: Any, pipeline: Pipeline | None = None) -> Checked:
    """(parsed data or None, normalized definition or None, problems with their lines)."""
    with definition.no_cycle_collection():  # parse, check and lines: one large tree
        return _check_parsed(text, fmt, user, pipeline)


def _check_parsed(text: str, fmt: str | None, user: Any, pipeline: Pipeline | None) -> Checked:
    try:
        data, root = definition.parse_document(text, fmt or None)
    except definition.DefinitionError as exc:
        return None, None, _parse_problems(exc)
    try:
        normalized = pipeline_validate(data, actor=Actor.of(user), pipeline=pipeline)
    except ServiceError as exc:
        return data, None, _with_lines(text, exc.errors, root)
    return data, normalized, []


def _usable_connections(user: Any) -> list[str]:
    return list(
        visible(user, Connection.objects.all(), Action.USE)
        .order_by("name")
        .values_list("name", flat=True)
    )


def _editor_context(
    request: HttpRequest,
    form: EditorForm,
    pipeline: Pipeline | None,
    *,
    check: bool = True,
    checked: Checked | None = None,
    copy_form: CopyTaskForm | None = None,
) -> dict[str, Any]:
    """The editor page; ``checked``: the check of the text when the caller already made it."""
    text = form.data.get("definition") if form.is_bound else form.initial.get("definition", "")
    fmt = form.data.get("format") if form.is_bound else ""
    if checked is None:
        checked = _check_text(text or "", fmt, request.user, pipeline) if check else None
    data, normalized, problems = checked or (None, None, [])
    connections = _usable_connections(request.user)
    # The preview draws the first tasks only: thousands of boxes help nobody
    # and would cost most of the request (SPEC §10 bounds it).
    tasks = definition_tasks(data)
    return {
        "nav": "pipelines",
        "form": form,
        "pipeline": pipeline,
        "problems": problems,
        "valid": normalized is not None,
        "checked": checked is not None,
        "graph": dag_graph(tasks[:PREVIEW_TASKS]),
        "preview_hidden": max(len(tasks) - PREVIEW_TASKS, 0),
        "preview_tasks": PREVIEW_TASKS,
        "copy_form": copy_form or CopyTaskForm(connections=connections, prefix="copy"),
        "connections": connections,
        # The current version's text, for the diff shown before saving (the
        # template calls it: only full pages, never the live check, pay for it).
        "original_definition": (
            (
                lambda: definition.dump_yaml(
                    definition_for(request.user, pipeline, pipeline.definition)
                )
            )
            if pipeline is not None
            else ""
        ),
    }


def _editor_save(request: HttpRequest, pipeline: Pipeline | None) -> HttpResponse:
    form = EditorForm(request.POST)
    checked: Checked | None = None
    if form.is_valid():
        text, fmt = form.cleaned_data["definition"], form.cleaned_data["format"] or None
        data, root = None, None
        try:
            data, root = definition.parse_document(text, fmt)
            if pipeline is None:
                pipeline = pipeline_create(data=data, actor=Actor.from_request(request))
                messages.success(request, f"Pipeline {pipeline.name} created (version 1).")
            else:
                before = pipeline.version
                pipeline = pipeline_update(
                    pipeline=pipeline, data=data, actor=Actor.from_request(request)
                )
                if pipeline.version == before:
                    messages.info(
                        request, "No changes: the definition is the same as the current version."
                    )
                else:
                    messages.success(request, f"Saved version {pipeline.version}.")
            return redirect("pipeline_detail", pipeline_id=pipeline.pk)
        except definition.DefinitionError as exc:
            checked = (None, None, _parse_problems(exc))
        except ServiceError as exc:
            # Every refusal (an invalid definition, a taken name) at its path,
            # from this one check: checking a large text again for the page
            # would double the cost of the request.
            problems = _with_lines(text, exc.errors, root) or [
                {"path": "", "message": exc.detail, "line": None}
            ]
            checked = (data, None, problems)
    context = _editor_context(request, form, pipeline, checked=checked)
    return render_ui(request, "pipelines/editor.html", context, status=400)


@ui_view
@require_http_methods(["GET", "POST"])
def pipeline_new(request: HttpRequest) -> HttpResponse:
    """The editor for a new pipeline; save creates version 1."""
    require_create(request.user)
    if request.method == "POST":
        return _editor_save(request, None)
    form = EditorForm(initial={"definition": NEW_PIPELINE_TEMPLATE, "format": ""})
    return render_ui(
        request, "pipelines/editor.html", _editor_context(request, form, None, check=False)
    )


@ui_view
@require_http_methods(["GET", "POST"])
def pipeline_edit(request: HttpRequest, pipeline_id: Any) -> HttpResponse:
    """The editor on the current version; save makes a new version."""
    pipeline = pipeline_for(request.user, pipeline_id, Action.CHANGE)
    if request.method == "POST":
        return _editor_save(request, pipeline)
    form = EditorForm(
        initial={
            "definition": definition.dump_yaml(
                definition_for(request.user, pipeline, pipeline.definition)
            ),
            "format": "yaml",
        }
    )
    return render_ui(request, "pipelines/editor.html", _editor_context(request, form, pipeline))


@ui_view
@require_POST
def pipeline_validate_view(request: HttpRequest) -> HttpResponse:
    """Live validation for the editor: problems at their paths and the DAG preview."""
    require_create(request.user)
    form = EditorForm(request.POST)
    form.is_valid()
    # Editing a pipeline: the connections it already uses need no use right.
    pipeline = None
    if request.POST.get("pipeline_id"):
        pipeline = pipeline_for(request.user, request.POST["pipeline_id"], Action.CHANGE)
    context = _editor_context(request, form, pipeline)
    return render_ui(request, "pipelines/editor.html", context, fragment="feedback")


@ui_view
@require_POST
def pipeline_copy_task(request: HttpRequest) -> HttpResponse:
    """The "new copy task" helper: append a copy task to the definition text."""
    require_create(request.user)
    pipeline = None
    if request.POST.get("pipeline_id"):
        pipeline = pipeline_for(request.user, request.POST["pipeline_id"], Action.CHANGE)
    connections = _usable_connections(request.user)
    copy_form = CopyTaskForm(request.POST, connections=connections, prefix="copy")
    text = request.POST.get("definition", "")
    fmt = request.POST.get("format") or None
    new_text = None
    if copy_form.is_valid():
        try:
            data = definition.parse_text(text, fmt)
        except definition.DefinitionError as exc:
            copy_form.add_error(None, f"fix the definition first: {exc}")
        else:
            if not isinstance(data, dict):
                data = {}
            tasks: list[Any] = data["tasks"] if isinstance(data.get("tasks"), list) else []
            data["tasks"] = [*tasks, copy_form.task()]
            is_json = fmt == "json" or (fmt is None and text.lstrip().startswith("{"))
            new_text = json.dumps(data, indent=2) + "\n" if is_json else definition.dump_yaml(data)
    editor = EditorForm(
        {
            "definition": new_text if new_text is not None else text,
            "format": request.POST.get("format", ""),
        }
    )
    if new_text is not None:
        copy_form = CopyTaskForm(connections=connections, prefix="copy")
    context = _editor_context(request, editor, pipeline, copy_form=copy_form)
    context["copy_added"] = new_text is not None
    response = render_ui(request, "pipelines/editor.html", context, fragment="editor-form")
    if new_text is not None:
        # The editor listens for this to re-check the new text and redraw the preview.
        response["HX-Trigger-After-Settle"] = "definition-changed"
    return response


# ---------------------------------------------------------------- runs


class RunsPaginator(Paginator):
    """Pages of runs whose ``count`` is ``count_bounded``'s: exact up to
    1,000 runs, an estimate past that (``count_exact`` False; the page says
    "about"), so the first pages stay fast at a million runs."""

    count_exact = True

    def __init__(self, runs: QuerySet[Execution], per_page: int) -> None:
        super().__init__(runs, per_page)
        self.runs = runs

    @cached_property
    def count(self) -> int:
        count, self.count_exact = count_bounded(self.runs)
        return count


@ui_view
def execution_list(request: HttpRequest) -> HttpResponse:
    form = ExecutionFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    runs = execution_list_visible(request.user, status=data.get("status") or None)
    if data.get("pipeline"):
        runs = runs.filter(pipeline__name__icontains=data["pipeline"])
    context = {
        "nav": "runs",
        "form": form,
        "page": RunsPaginator(runs, PAGE_SIZE).get_page(request.GET.get("page")),
        "query": query_without_page(request),
    }
    return render_ui(request, "pipelines/runs.html", context, fragment="results")


def _execution_context(request: HttpRequest, execution: Execution) -> dict[str, Any]:
    runs = in_graph_order(list(task_runs_of(execution)))
    now = timezone.now()
    pipeline = execution.pipeline
    log_url = lambda name: reverse("task_log", args=[execution.pk, name])  # noqa: E731
    finished = execution.status in EXECUTION_FINISHED
    can_operate = can(request.user, Action.OPERATE, pipeline)
    return {
        "nav": "runs",
        "execution": execution,
        "pipeline": pipeline,
        "runs": runs,
        "graph": dag_graph(
            [(r.task_name, list(r.depends_on)) for r in runs],
            {r.task_name: r.status for r in runs},
            log_url,
        ),
        "gantt": gantt(execution, runs, now),
        "finished": finished,
        "can_cancel": can_operate and not finished,
        "can_rerun": can_operate and finished,
        "poll": POLL_SECONDS,
        "duration": ((execution.ended_at or now) - execution.started_at).total_seconds()
        if execution.started_at
        else None,
    }


@ui_view
def execution_detail(request: HttpRequest, execution_id: Any) -> HttpResponse:
    """A run: graph, timeline and task table, refreshed by HTMX polling until it finishes."""
    execution = execution_for(request.user, execution_id)
    return render_ui(
        request, "pipelines/run.html", _execution_context(request, execution), fragment="live"
    )


@ui_view
@require_POST
def execution_cancel_view(request: HttpRequest, execution_id: Any) -> HttpResponse:
    execution = execution_for(request.user, execution_id, Action.OPERATE)
    try:
        execution_cancel(
            execution=execution, actor=Actor.from_request(request), reason="cancelled in the UI"
        )
        messages.success(
            request, "Cancel requested: waiting tasks will not start, running ones stop."
        )
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("execution_detail", execution_id=execution.pk)


@ui_view
@require_POST
def execution_rerun_view(request: HttpRequest, execution_id: Any) -> HttpResponse:
    """A new run of the tasks that did not succeed (or from one task)."""
    execution = execution_for(request.user, execution_id, Action.OPERATE)
    try:
        new = execution_rerun(
            execution=execution,
            from_task=request.POST.get("from_task") or None,
            actor=Actor.from_request(request),
        )
    except ServiceError as exc:
        messages.error(request, exc.detail)
        return redirect("execution_detail", execution_id=execution.pk)
    messages.success(request, "Rerun started.")
    return redirect("execution_detail", execution_id=new.pk)


@ui_view
def task_log_view(request: HttpRequest, execution_id: Any, task_name: str) -> HttpResponse:
    """A task's log; with ``after`` only newer lines (tailing while it runs)."""
    execution = execution_for(request.user, execution_id)
    task_run = task_run_get(execution, task_name)
    # Status first, lines second: a run seen active gets polled again, so no
    # line written before it finished can be missed.
    active = task_run.status in TASK_ACTIVE and execution.status not in EXECUTION_FINISHED
    try:
        after = int(request.GET.get("after", "-1"))
    except ValueError:
        raise NotFound("bad position") from None
    lines = task_log(task_run, after_seq=after)
    last_seq = lines[-1].seq if lines else after
    context = {
        "nav": "runs",
        "execution": execution,
        "pipeline": execution.pipeline,
        "task_run": task_run,
        "lines": lines,
        "last_seq": last_seq,
        "active": active,
        "poll": POLL_SECONDS,
    }
    fragment = "lines" if "after" in request.GET else "panel"
    return render_ui(request, "pipelines/log.html", context, fragment=fragment)
