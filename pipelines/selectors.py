"""Reads of the pipelines app, always limited to what the user may see."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import OuterRef, Q, QuerySet, Subquery

from accounts.permissions import Action, can, get_for, is_admin, visible
from core.errors import NotFound
from pipelines import definition
from pipelines.models import Execution, ExecutionQuerySet, Pipeline, TaskLogLine, TaskRun


def _last_execution(field: str) -> Subquery:
    latest = Execution.objects.filter(pipeline=OuterRef("pk")).order_by("-created_at")
    return Subquery(latest.values(field)[:1])


def pipeline_list_visible(
    user: Any,
    *,
    tag: str | None = None,
    enabled: bool | None = None,
    search: str | None = None,
    last_status: str | None = None,
) -> QuerySet[Pipeline]:
    """Pipelines the user may see, with their last run's status and time."""
    pipelines = visible(user, Pipeline.objects.all()).annotate(
        last_status=_last_execution("status"), last_run_at=_last_execution("created_at")
    )
    if tag:
        # JSON containment is not on SQLite; an exact match on the JSON text
        # of one element works on every backend.
        pipelines = pipelines.filter(tags__icontains=f'"{tag}"')
    if enabled is not None:
        pipelines = pipelines.filter(enabled=enabled)
    if search:
        pipelines = pipelines.filter(Q(name__icontains=search) | Q(description__icontains=search))
    if last_status:
        pipelines = pipelines.filter(last_status=last_status)
    return pipelines.select_related("created_by").order_by("name")


def pipeline_for(user: Any, pipeline_id: Any, action: Action = Action.VIEW) -> Pipeline:
    """The pipeline for ``user`` to do ``action`` (``accounts.permissions.get_for``: 404, 403)."""
    pipeline: Pipeline = get_for(
        user, Pipeline.objects.select_related("created_by"), action, pk=pipeline_id
    )
    return pipeline


def definition_for(user: Any, pipeline: Pipeline, defn: dict[str, Any]) -> dict[str, Any]:
    """``defn``, a definition of ``pipeline``, as ``user`` may read it (SPEC §10).

    Webhook URLs (Slack's carry a token) are shown in full only to users who
    may change the pipeline; others see scheme and host. Every page, answer
    and admin view that shows a definition goes through here. Users who see
    the cut form cannot save it back: they may not change the pipeline, and
    the definition module refuses the cut form as a webhook URL.
    """
    return defn if can(user, Action.CHANGE, pipeline) else definition.redacted(defn)


def visible_pipeline_ids(user: Any) -> list[Any]:
    """The ids of the pipelines ``user`` may see (one query; their runs with them)."""
    return list(visible(user, Pipeline.objects.all(), Action.VIEW).values_list("pk", flat=True))


def execution_list_visible(
    user: Any,
    *,
    pipeline: Pipeline | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ExecutionQuerySet:
    if is_admin(user):
        # Admins see everything: no pipeline subquery in every list and count.
        executions = Execution.objects.all()
    else:
        # The visible pipelines' ids first (one query), then a plain IN list:
        # the planner picks exec_pipeline_created for a user who sees few
        # pipelines instead of filtering every run through guardian's subqueries.
        executions = Execution.objects.filter(pipeline_id__in=visible_pipeline_ids(user))
    if pipeline is not None:
        executions = executions.for_pipeline(pipeline)
    if status:
        executions = executions.filter(status=status)
    if since:
        executions = executions.filter(created_at__gte=since)
    if until:
        executions = executions.filter(created_at__lte=until)
    # Definitions can be large JSON; a list needs the names and numbers only
    # (a page that needs a definition loads it on access).
    return (
        executions.select_related("pipeline", "version")
        .defer("pipeline__definition", "version__definition")
        .order_by("-created_at")
    )


# ``count`` of a list is exact up to this many rows; past it, on PostgreSQL,
# the planner's estimate (flagged as such): counting a million rows exactly
# took longer than the rest of the request.
COUNT_EXACT_LIMIT = 1_000
# An estimate well past the limit (ten times) is kept this long per query,
# in each process: at a million runs, counting and estimating were a third
# of a list request's work, and an estimate a few seconds old is no less an
# estimate. Near the limit the count may soon be exact again: not kept.
ESTIMATE_SECONDS = 5.0
_ESTIMATES_MAX = 256
_estimates: dict[tuple[Any, ...], tuple[float, int]] = {}
_estimates_lock = threading.Lock()


def _planner_rows(queryset: QuerySet[Any], sql: str, params: tuple[Any, ...]) -> int:
    """PostgreSQL's estimate of the number of rows ``sql`` returns (no rows read)."""
    with connections[queryset.db].cursor() as cursor:
        # The query is Django's own SQL with its parameters kept apart.
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)  # nosec B608
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


def _estimate_kept(key: tuple[Any, ...]) -> int | None:
    with _estimates_lock:
        kept = _estimates.get(key)
    if kept is None or time.monotonic() - kept[0] > ESTIMATE_SECONDS:
        return None
    return kept[1]


def _estimate_keep(key: tuple[Any, ...], rows: int) -> None:
    with _estimates_lock:
        if len(_estimates) >= _ESTIMATES_MAX:
            _estimates.clear()
        _estimates[key] = (time.monotonic(), rows)


def count_bounded(queryset: QuerySet[Any]) -> tuple[int, bool]:
    """``(count, exact)`` of ``queryset``, cheap at any size.

    Exact when at most ``COUNT_EXACT_LIMIT`` rows match (counted, reading at
    most that many index entries). Past that, on PostgreSQL, the planner's
    estimate, never below ``COUNT_EXACT_LIMIT + 1``, and ``exact`` is False;
    an estimate of ten times the limit or more is given again for the same
    query, without a query, for ``ESTIMATE_SECONDS``. Other databases count
    exactly.
    """
    if connections[queryset.db].vendor != "postgresql":
        return queryset.count(), True
    try:
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # a filter no row can match (IN of nothing)
        return 0, True
    key = (queryset.db, sql, *params)
    kept = _estimate_kept(key)
    if kept is not None:
        return kept, False
    bounded = queryset.order_by()[: COUNT_EXACT_LIMIT + 1].count()
    if bounded <= COUNT_EXACT_LIMIT:
        return bounded, True
    rows = max(_planner_rows(queryset, sql, params), bounded)
    if rows >= 10 * COUNT_EXACT_LIMIT:
        _estimate_keep(key, rows)
    return rows, False


def execution_keyset(
    executions: QuerySet[Execution],
    *,
    before: tuple[datetime, Any] | None = None,
    after: tuple[datetime, Any] | None = None,
    size: int,
) -> tuple[list[Any], bool]:
    """One page of ``executions``, newest first, by position instead of offset.

    ``before``/``after`` are the ``(created_at, execution_id)`` of the row the
    page starts after, going to older (``before``) or newer (``after``) runs;
    neither: the newest. Returns the page (as the queryset yields: models or
    ``values()`` dicts) and whether more rows lie beyond it in that direction.
    Rows inserted meanwhile never shift a page (an offset would repeat or
    skip rows), and the cost does not grow with the depth.
    """
    if after is not None:
        at, key = after
        # created_at >= at bounds the index scan; the OR only breaks ties.
        rows = executions.filter(
            Q(created_at__gt=at) | Q(created_at=at, execution_id__gt=key), created_at__gte=at
        ).order_by("created_at", "execution_id")
    else:
        if before is not None:
            at, key = before
            executions = executions.filter(
                Q(created_at__lt=at) | Q(created_at=at, execution_id__lt=key),
                created_at__lte=at,
            )
        rows = executions.order_by("-created_at", "-execution_id")
    page = list(rows[: size + 1])
    more = len(page) > size
    page = page[:size]
    if after is not None:
        page.reverse()
    return page, more


def execution_rows_for(
    user: Any, execution_id: Any, rows: QuerySet[Any] | list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of ``rows`` (``Execution`` values with ``pipeline_id``) of one
    execution that ``user`` may see: one, or one per joined row (its task runs).
    ``rows`` a list: that execution's rows, already read.

    NotFound (404) when it does not exist, the id is malformed, or its
    pipeline is not visible to the user. One query for admins, one more
    (``visible`` on that pipeline, no model loaded) for the others.
    """
    try:
        pk = uuid.UUID(str(execution_id))
    except ValueError:
        raise NotFound("execution not found") from None
    found: list[dict[str, Any]] = rows if isinstance(rows, list) else list(rows.filter(pk=pk))
    if not found:
        raise NotFound("execution not found")
    if not is_admin(user):
        pipeline = Pipeline.objects.filter(pk=found[0]["pipeline_id"])
        if not visible(user, pipeline).exists():
            raise NotFound("execution not found")
    return found


# Any uuid: the value a statement is compiled with, then replaced.
_PLACEHOLDER = uuid.UUID("5e1ec7ed-0000-4000-8000-000000000000")


class PkStatement:
    """A ``values()`` query on one uuid key, compiled once per database.

    ``build(pk)`` returns the queryset for a key (a uuid primary or foreign
    key); the SQL Django makes for it is the same for every key but the
    key's parameter, so it is made once
    (per alias and vendor) and run with the key put in. Rows come back
    through the compiler's converters, as ``values()`` gives them. Polled
    endpoints read one execution by key: compiling the query was a quarter of
    their server time.
    """

    def __init__(self, build: Callable[[uuid.UUID], QuerySet[Any]]) -> None:
        self.build = build
        self._compiled: dict[tuple[str, str], tuple[Any, str, tuple[Any, ...], int]] = {}
        self._lock = threading.Lock()

    def _compile(self, alias: str) -> tuple[Any, str, tuple[Any, ...], int]:
        connection = connections[alias]
        key = (alias, connection.vendor)
        with self._lock:
            found = self._compiled.get(key)
        if found is not None:
            return found
        queryset = self.build(_PLACEHOLDER)
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        placeholder = queryset.model._meta.pk.get_db_prep_value(_PLACEHOLDER, connection)
        where = [i for i, value in enumerate(params) if value == placeholder]
        if len(where) != 1:  # the key must be the statement's only such parameter
            raise ValueError(f"cannot find the key among {params!r}")
        found = (compiler, sql, tuple(params), where[0])
        with self._lock:
            self._compiled[key] = found
        return found

    def rows(self, pk: uuid.UUID, using: str = "default") -> list[dict[str, Any]]:
        compiler, sql, params, at = self._compile(using)
        connection = connections[using]
        values = list(params)
        values[at] = compiler.query.model._meta.pk.get_db_prep_value(pk, connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, values)  # Django's own SQL, the key a parameter
            raw = cursor.fetchall()
        query = compiler.query  # the names in ValuesIterable's order
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        return [dict(zip(names, row, strict=True)) for row in compiler.results_iter([raw])]


def execution_statement_for(user: Any, execution_id: Any, statement: PkStatement) -> list[Any]:
    """``execution_rows_for`` with a ``PkStatement`` of ``Execution`` values (one query)."""
    try:
        pk = uuid.UUID(str(execution_id))
    except ValueError:
        raise NotFound("execution not found") from None
    return execution_rows_for(user, pk, statement.rows(pk))


def execution_row_for(user: Any, execution_id: Any, rows: QuerySet[Any]) -> dict[str, Any]:
    """The one row of ``execution_rows_for``."""
    return execution_rows_for(user, execution_id, rows)[0]


def execution_for(user: Any, execution_id: Any, action: Action = Action.VIEW) -> Execution:
    """The execution for ``user`` to do ``action`` to its pipeline (``get_for``: 404, 403)."""
    executions = Execution.objects.select_related("pipeline", "version")
    execution: Execution = get_for(user, executions, action, via="pipeline", pk=execution_id)
    return execution


def task_runs_of(execution: Execution) -> QuerySet[TaskRun]:
    return execution.tasks.order_by("started_at", "task_name")


def task_run_get(execution: Execution, task_name: str) -> TaskRun:
    try:
        return execution.tasks.get(task_name=task_name)
    except TaskRun.DoesNotExist:
        raise NotFound(f"task '{task_name}' not found") from None


def task_log(task_run: TaskRun, *, after_seq: int = -1, limit: int = 1000) -> list[TaskLogLine]:
    """Log lines after ``after_seq`` (for tailing)."""
    return list(task_run.log_lines.filter(seq__gt=after_seq).order_by("seq")[:limit])


def watermark_list(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """``{task: {column, value, updated_at}}``: the pipeline's incremental copy watermarks."""
    return {
        mark.task_name: {"column": mark.column, "value": mark.value, "updated_at": mark.updated_at}
        for mark in pipeline.watermarks.order_by("task_name")
    }
