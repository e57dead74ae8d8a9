"""API views of pipelines and executions (SPEC §4). Thin: selectors, permissions, services.

One object is fetched by ``get_object()`` (``accounts.api.ObjectView``, i.e.
``accounts.permissions.get_for``: 404 when the user may not see it) and the
``ObjectAccess`` permission class answers 403 when they may see it but not do
the method's action to it. Lists come from the ``*_list_visible`` selectors.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from accounts.actor import Actor
from accounts.api import ObjectView
from accounts.permissions import require_create, share_levels_prefetch
from core.api import Cursor, ExecuteThrottle, KeysetPagination, cursor_decode, page_link
from core.errors import InvalidInput
from core.parsers import JSONParser
from pipelines import answers, selectors, services
from pipelines.models import Execution, Pipeline, TaskRun, Trigger
from pipelines.serializers import (
    EXECUTION_VALUES,
    BackfillResultSerializer,
    BackfillSerializer,
    ExecuteSerializer,
    ExecutionFilterSerializer,
    ExecutionRefSerializer,
    ExecutionSerializer,
    ExecutionStatusSerializer,
    LogQuerySerializer,
    PipelineDefinitionSerializer,
    PipelineFilterSerializer,
    PipelinePatchSerializer,
    PipelineSerializer,
    PipelineVersionSerializer,
    RerunSerializer,
    TaskLogSerializer,
    definition_from_body,
    task_run_values,
)

# Visible ASCII, at most the column's length: a header is client text, and
# NUL or control characters would fail in the database rather than here.
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,200}")


def _query(serializer_class: type[Serializer], request: Request) -> dict[str, Any]:
    """Validated query parameters (400 with the parameter's name as path)."""
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _body(serializer_class: type[Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _shown(request: Request, pipeline: Pipeline) -> Any:
    """The pipeline as the caller may read it (``selectors.definition_for``)."""
    return PipelineSerializer(pipeline, context={"request": request}).data


class _JsonView(GenericAPIView):
    # Definitions are nested JSON; form encodings cannot carry them.
    parser_classes = [JSONParser]


class _PipelineView(ObjectView):
    parser_classes = [JSONParser]
    queryset = Pipeline.objects.select_related("created_by")
    lookup_url_kwarg = "pipeline_id"


class _ExecutionView(ObjectView):
    """Executions are seen and operated through their pipeline's sharing."""

    parser_classes = [JSONParser]
    queryset = Execution.objects.select_related("pipeline", "version")
    lookup_url_kwarg = "execution_id"
    via = "pipeline"


# ------------------------------------------------------------- pipelines


@extend_schema(tags=["pipelines"])
class PipelineListView(_JsonView):
    queryset = Pipeline.objects.none()
    serializer_class = PipelineSerializer

    @extend_schema(parameters=[PipelineFilterSerializer], responses=PipelineSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = _query(PipelineFilterSerializer, request)
        pipelines = selectors.pipeline_list_visible(
            request.user,
            tag=filters.get("tag"),
            enabled=filters.get("enabled"),
            search=filters.get("search"),
            last_status=filters.get("status"),
        )
        page = self.paginate_queryset(pipelines) or []
        # What the caller may do to each decides what they see of it (webhook URLs).
        share_levels_prefetch(request.user, page)
        data = PipelineSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    @extend_schema(request=PipelineDefinitionSerializer, responses={201: PipelineSerializer})
    def post(self, request: Request) -> Response:
        require_create(request.user)
        pipeline = services.pipeline_create(
            data=definition_from_body(request.data), actor=Actor.from_request(request)
        )
        return Response(_shown(request, pipeline), status=201)


@extend_schema(tags=["pipelines"])
class PipelineDetailView(_PipelineView):
    serializer_class = PipelineSerializer

    def get(self, request: Request, pipeline_id: str) -> Response:
        pipeline = self.get_object()
        return Response(_shown(request, pipeline))

    @extend_schema(request=PipelineDefinitionSerializer, responses=PipelineSerializer)
    def put(self, request: Request, pipeline_id: str) -> Response:
        pipeline = self.get_object()
        pipeline = services.pipeline_update(
            pipeline=pipeline,
            data=definition_from_body(request.data),
            actor=Actor.from_request(request),
        )
        return Response(_shown(request, pipeline))

    @extend_schema(request=PipelinePatchSerializer, responses=PipelineSerializer)
    def patch(self, request: Request, pipeline_id: str) -> Response:
        pipeline = self.get_object()
        pipeline = services.pipeline_update(
            pipeline=pipeline,
            data=definition_from_body(request.data),
            actor=Actor.from_request(request),
            partial=True,
        )
        return Response(_shown(request, pipeline))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pipeline_id: str) -> Response:
        pipeline = self.get_object()
        services.pipeline_delete(pipeline=pipeline, actor=Actor.from_request(request))
        return Response(status=204)


@extend_schema(tags=["pipelines"])
class PipelineVersionsView(_PipelineView):
    serializer_class = PipelineVersionSerializer

    @extend_schema(responses=PipelineVersionSerializer(many=True))
    def get(self, request: Request, pipeline_id: str) -> Response:
        pipeline = self.get_object()
        versions = pipeline.versions.select_related("created_by").order_by("-version")
        page = self.paginate_queryset(versions)
        data = PipelineVersionSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)


@extend_schema(tags=["pipelines"])
class PipelineExecuteView(_PipelineView):
    """Run now. ``Idempotency-Key``: the same user, pipeline and key within 24 h
    get the execution made the first time."""

    serializer_class = ExecuteSerializer
    throttle_classes = [ExecuteThrottle]

    @extend_schema(
        request=ExecuteSerializer,
        responses={200: ExecutionRefSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="retries with the same key return the same execution",
            )
        ],
    )
    def post(self, request: Request, pipeline_id: str) -> Response:
        pipeline = self.get_object()
        body = _body(ExecuteSerializer, request)
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise InvalidInput(
                "invalid header",
                [("Idempotency-Key", "1 to 200 visible ASCII characters")],
            )
        execution = services.execution_create(
            pipeline=pipeline,
            trigger=Trigger.API,
            parameters=body["parameters"],
            actor=Actor.from_request(request),
            idempotency_key=key,
        )
        return Response(ExecutionRefSerializer(execution).data)


@extend_schema(tags=["pipelines"])
class PipelineBackfillView(_PipelineView):
    serializer_class = BackfillSerializer
    throttle_classes = [ExecuteThrottle]

    @extend_schema(request=BackfillSerializer, responses={200: BackfillResultSerializer})
    def post(self, request: Request, pipeline_id: str) -> Response:
        pipeline = self.get_object()
        body = _body(BackfillSerializer, request)
        executions = services.pipeline_backfill(
            pipeline=pipeline,
            start=body["start"],
            end=body["end"],
            actor=Actor.from_request(request),
        )
        return Response(BackfillResultSerializer(executions).data)


# ------------------------------------------------------------ executions


def _pipeline_lookup(value: str) -> dict[str, Any]:
    """Filter executions by pipeline id, or by name when the value is no UUID."""
    try:
        return {"pipeline_id": uuid.UUID(value)}
    except ValueError:
        return {"pipeline__name": value}


def _position(cursor: Cursor) -> tuple[Any, uuid.UUID]:
    try:
        return cursor.at, uuid.UUID(cursor.key)
    except ValueError:
        raise InvalidInput(
            "invalid input", [("cursor", "not a cursor from a next or previous link")]
        ) from None


def _edge(row: dict[str, Any], *, older: bool) -> Cursor:
    return Cursor(older, row["created_at"], str(row["execution_id"]))


@extend_schema(tags=["executions"])
class ExecutionListView(_JsonView):
    """Newest first, by position: follow ``next``/``previous``; ``count`` is
    exact up to 1,000 matches and PostgreSQL's estimate past that
    (``count_exact`` says which)."""

    queryset = Execution.objects.none()
    serializer_class = ExecutionSerializer
    pagination_class = KeysetPagination

    @extend_schema(parameters=[ExecutionFilterSerializer], responses=ExecutionSerializer(many=True))
    def get(self, request: Request) -> Response:
        if "page" in request.query_params:
            # A client counting pages would get the first one again and again.
            raise InvalidInput(
                "invalid input", [("page", "executions page by cursor: follow next or previous")]
            )
        filters = _query(ExecutionFilterSerializer, request)
        executions = selectors.execution_list_visible(
            request.user,
            status=filters.get("status"),
            since=filters.get("since"),
            until=filters.get("until"),
        )
        if filters.get("pipeline"):
            executions = executions.filter(**_pipeline_lookup(filters["pipeline"]))
        if filters.get("trigger"):
            executions = executions.filter(trigger=filters["trigger"])
        cursor = cursor_decode(filters["cursor"]) if filters.get("cursor") else None
        position = _position(cursor) if cursor else None
        older = cursor is None or cursor.older
        rows, more = selectors.execution_keyset(
            executions.values(*answers.LIST_VALUES),
            before=position if older else None,
            after=None if older else position,
            size=filters["page_size"],
        )
        count, exact = selectors.count_bounded(executions)
        # An empty page links back to where it started.
        here = Cursor(not older, cursor.at, cursor.key) if cursor else None
        if older:  # rows older than the cursor (or the newest)
            next_ = _edge(rows[-1], older=True) if more else None
            previous = _edge(rows[0], older=False) if rows else here
        else:  # rows newer than the cursor
            previous = _edge(rows[0], older=False) if more else None
            next_ = _edge(rows[-1], older=True) if rows else here
        if cursor is None:
            previous = None
        return Response(
            {
                "count": count,
                "count_exact": exact,
                "next": page_link(request, next_),
                "previous": page_link(request, previous),
                "results": answers.answers(rows),
            }
        )


# The polled reads of one execution, compiled once (selectors.PkStatement).
_DETAIL = selectors.PkStatement(
    lambda pk: Execution.objects.filter(pk=pk).values(*EXECUTION_VALUES.values(), "answer__text")
)
_DETAIL_TASKS = selectors.PkStatement(
    lambda pk: task_run_values(TaskRun.objects.filter(execution_id=pk))
)
# Status in one query: the execution joined to its task runs, a row each.
_STATUS = selectors.PkStatement(
    lambda pk: (
        Execution.objects.filter(pk=pk)
        .order_by("tasks__started_at", "tasks__task_name")
        .values("execution_id", "status", "pipeline_id", "tasks__task_name", "tasks__status")
    )
)


@extend_schema(tags=["executions"])
class ExecutionDetailView(_ExecutionView):
    serializer_class = ExecutionSerializer

    def get(self, request: Request, execution_id: str) -> Response:
        # One query when its answer is stored, else two (each compiled once):
        # the execution, then its task runs.
        row = selectors.execution_statement_for(request.user, execution_id, _DETAIL)[0]
        answer = answers.stored(row)
        if answer is None:
            return Response(answers.rendered([row], _DETAIL_TASKS.rows(row["execution_id"]))[0])
        return Response(answer)


@extend_schema(tags=["executions"])
class ExecutionStatusView(_ExecutionView):
    serializer_class = ExecutionStatusSerializer

    def get(self, request: Request, execution_id: str) -> Response:
        rows = selectors.execution_statement_for(request.user, execution_id, _STATUS)
        tasks = {r["tasks__task_name"]: r["tasks__status"] for r in rows if r["tasks__task_name"]}
        data = {"execution_id": str(rows[0]["execution_id"]), "status": rows[0]["status"]}
        return Response({**data, "tasks": tasks})


@extend_schema(tags=["executions"])
class ExecutionCancelView(_ExecutionView):
    """Cancel; 409 when the execution already finished."""

    serializer_class = ExecutionRefSerializer

    @extend_schema(request=None, responses={200: ExecutionRefSerializer})
    def post(self, request: Request, execution_id: str) -> Response:
        execution = self.get_object()
        execution = services.execution_cancel(
            execution=execution, actor=Actor.from_request(request)
        )
        return Response(ExecutionRefSerializer(execution).data)


@extend_schema(tags=["executions"])
class ExecutionRerunView(_ExecutionView):
    """A new execution of the tasks that did not succeed, or of ``from_task`` and its downstream."""

    serializer_class = RerunSerializer
    throttle_classes = [ExecuteThrottle]

    @extend_schema(request=RerunSerializer, responses={200: ExecutionRefSerializer})
    def post(self, request: Request, execution_id: str) -> Response:
        execution = self.get_object()
        body = _body(RerunSerializer, request)
        new = services.execution_rerun(
            execution=execution,
            from_task=body.get("from_task"),
            actor=Actor.from_request(request),
        )
        return Response(ExecutionRefSerializer(new).data)


@extend_schema(
    tags=["executions"],
    parameters=[
        OpenApiParameter("task_name", OpenApiTypes.STR, OpenApiParameter.PATH),
        LogQuerySerializer,
    ],
)
class TaskLogView(_ExecutionView):
    """A task run's log lines, oldest first; pass ``after`` to tail."""

    serializer_class = TaskLogSerializer

    def get(self, request: Request, execution_id: str, task_name: str) -> Response:
        execution = self.get_object()
        query = _query(LogQuerySerializer, request)
        task_run = selectors.task_run_get(execution, task_name)
        lines = selectors.task_log(task_run, after_seq=query["after"], limit=query["limit"])
        return Response(
            TaskLogSerializer(
                {
                    "execution_id": execution.pk,
                    "task_name": task_run.task_name,
                    "status": task_run.status,
                    "lines": lines,
                    "next_after": lines[-1].seq if lines else query["after"],
                }
            ).data
        )
