"""API shapes of pipelines, versions and executions (SPEC §4).

Output serializers turn models into the documented shapes. Input is
validated by the services (the definition module for pipelines); the input
serializers here only check the envelope (types of ``parameters``,
``start``/``end``) and document the bodies in the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, tzinfo
from types import SimpleNamespace
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import CursorQuery
from pipelines.models import (
    EXECUTION_FINISHED,
    Execution,
    ExecutionStatus,
    Pipeline,
    PipelineVersion,
    TaskRun,
    TaskRunStatus,
    Trigger,
)
from pipelines.selectors import definition_for

# Keys the API adds to a definition when it answers; a client may send a
# pipeline back as it got it, and these are dropped before validation.
READ_ONLY_KEYS = frozenset(
    {
        "pipeline_id",
        "version",
        "created_by",
        "created_at",
        "updated_at",
        "last_status",
        "last_run_at",
    }
)


def definition_from_body(data: Any) -> Any:
    """The definition part of a request body (the read-only keys dropped)."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in READ_ONLY_KEYS}
    return data


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def _reader(serializer: serializers.Serializer) -> Any:
    """Who the answer is for (None without a request: then secrets are cut, see definition_for)."""
    request = serializer.context.get("request")
    return getattr(request, "user", None)


# ------------------------------------------------------------- pipelines


class PipelineDefinitionSerializer(serializers.Serializer):
    """A pipeline definition (SPEC §2), checked in full by the server."""

    name = serializers.CharField(max_length=100, help_text="[A-Za-z_][A-Za-z0-9_-]{0,99}, unique")
    description = serializers.CharField(required=False, allow_blank=True)
    schedule = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="5-field cron, or {assets: [connection.schema.table, ...]}",
    )
    timezone = serializers.CharField(required=False, help_text="IANA name, default UTC")
    catchup = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    max_active_runs = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    parameters = serializers.DictField(required=False)
    on_failure = serializers.DictField(required=False, allow_null=True)
    tasks = serializers.ListField(child=serializers.DictField())


class PipelinePatchSerializer(PipelineDefinitionSerializer):
    """PATCH: any top-level key of the definition, merged into the current one."""

    name = serializers.CharField(max_length=100, required=False)
    tasks = serializers.ListField(child=serializers.DictField(), required=False)


class PipelineSerializer(serializers.ModelSerializer):
    """A pipeline: its current definition plus who made it, when, and its last run."""

    on_failure = serializers.SerializerMethodField()
    tasks = serializers.SerializerMethodField()
    schedule = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    last_status = serializers.CharField(read_only=True, allow_null=True, default=None)
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True, default=None)

    class Meta:
        model = Pipeline
        fields = [
            "pipeline_id",
            "name",
            "description",
            "version",
            "enabled",
            "schedule",
            "timezone",
            "catchup",
            "max_active_runs",
            "tags",
            "parameters",
            "on_failure",
            "tasks",
            "created_by",
            "created_at",
            "updated_at",
            "last_status",
            "last_run_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": True})
    def get_on_failure(self, obj: Pipeline) -> Any:
        return definition_for(_reader(self), obj, obj.definition).get("on_failure")

    @extend_schema_field(
        {"type": "array", "items": {"type": "object", "additionalProperties": True}}
    )
    def get_tasks(self, obj: Pipeline) -> list[Any]:
        return list(obj.definition.get("tasks", []))

    @extend_schema_field(
        {
            "oneOf": [
                {"type": "string", "description": "5-field cron"},
                {
                    "type": "object",
                    "properties": {"assets": {"type": "array", "items": {"type": "string"}}},
                    "description": "runs when every listed asset has had an event",
                },
            ],
            "nullable": True,
        }
    )
    def get_schedule(self, obj: Pipeline) -> str | dict[str, list[str]] | None:
        if obj.schedule_assets:
            return {"assets": list(obj.schedule_assets)}
        return obj.schedule or None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_created_by(self, obj: Pipeline) -> str | None:
        return _username(obj.created_by)


class PipelineVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()
    definition = serializers.SerializerMethodField()

    class Meta:
        model = PipelineVersion
        fields = ["version", "definition", "created_by", "created_at"]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_definition(self, obj: PipelineVersion) -> dict[str, Any]:
        return definition_for(_reader(self), obj.pipeline, obj.definition)

    @extend_schema_field({"type": "string", "nullable": True})
    def get_created_by(self, obj: PipelineVersion) -> str | None:
        return _username(obj.created_by)


class PipelineFilterSerializer(serializers.Serializer):
    """Query parameters of ``GET /pipelines``."""

    tag = serializers.CharField(required=False, max_length=100)
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)
    search = serializers.CharField(required=False, max_length=200)
    status = serializers.ChoiceField(
        choices=ExecutionStatus.choices, required=False, help_text="status of the last run"
    )


class ExecuteSerializer(serializers.Serializer):
    """Body of ``POST /pipelines/{id}/execute``."""

    parameters = serializers.DictField(
        required=False, default=dict, help_text="overrides of the pipeline's parameters"
    )


class ExecutionRefSerializer(serializers.ModelSerializer):
    """What execute, rerun and cancel answer."""

    class Meta:
        model = Execution
        fields = ["execution_id", "status"]
        read_only_fields = fields


@extend_schema_field(OpenApiTypes.STR)
class MomentField(serializers.Field):
    """An ISO date or datetime; naive values are UTC."""

    default_error_messages = {"invalid": "must be an ISO date (2024-01-31) or datetime"}

    def to_internal_value(self, data: Any) -> datetime | date:
        invalid = serializers.ValidationError(self.error_messages["invalid"], code="invalid")
        if not isinstance(data, str) or len(data) > 64:
            raise invalid
        try:
            # A date first: parse_datetime also takes "2024-01-31" (as midnight),
            # which would make an end date exclude its own day.
            day = parse_date(data)
            if day is not None:
                return day  # the caller decides which end of the day
            moment = parse_datetime(data)
        except ValueError:  # well-formed but impossible, e.g. 2024-02-30
            raise invalid from None
        if moment is None:
            raise invalid
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)

    def to_representation(self, value: Any) -> str:
        return str(value)


class BackfillSerializer(serializers.Serializer):
    """Body of ``POST /pipelines/{id}/backfill``; both ends inclusive."""

    start = MomentField(help_text="ISO date or datetime; a date means its start")
    end = MomentField(help_text="ISO date or datetime; a date means the whole day")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs["start"], attrs["end"]
        if not isinstance(start, datetime):
            start = datetime.combine(start, time.min, tzinfo=UTC)
        if not isinstance(end, datetime):
            end = datetime.combine(end, time.max, tzinfo=UTC)
        if end < start:
            raise serializers.ValidationError({"end": "must not be before start"})
        return {"start": start, "end": end}


class BackfillResultSerializer(serializers.Serializer):
    executions = serializers.SerializerMethodField()

    @extend_schema_field(
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "execution_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string"},
                    "data_interval_start": {"type": "string", "format": "date-time"},
                    "data_interval_end": {"type": "string", "format": "date-time"},
                },
                "required": ["execution_id", "status", "data_interval_start", "data_interval_end"],
            },
        }
    )
    def get_executions(self, obj: list[Execution]) -> list[dict[str, Any]]:
        return [
            {
                "execution_id": str(e.pk),
                "status": e.status,
                "data_interval_start": serializers.DateTimeField().to_representation(
                    e.data_interval_start
                ),
                "data_interval_end": serializers.DateTimeField().to_representation(
                    e.data_interval_end
                ),
            }
            for e in obj
        ]


# ------------------------------------------------------------ executions


class TaskRunSerializer(serializers.ModelSerializer):
    # When a waiting sensor is checked next (SPEC §8 "wait"); null unless waiting.
    next_check_at = serializers.SerializerMethodField()

    class Meta:
        model = TaskRun
        fields = [
            "task_id",
            "task_name",
            "task_type",
            "status",
            "retry_count",
            "attempt",
            "depends_on",
            "started_at",
            "ended_at",
            "next_check_at",
            "error",
            "metrics",
            "output",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_check_at(self, task_run: TaskRun) -> Any:
        due = next_check_at(task_run)
        return _DATETIME.to_representation(due) if due is not None else None


def next_check_at(task_run: TaskRun) -> datetime | None:
    """When the reaper queues the run for its next check, while it is waiting."""
    return task_run.next_check_at if task_run.status == TaskRunStatus.WAITING else None


_DATETIME = serializers.DateTimeField()


def moment(value: datetime | None, tz: tzinfo | None = None) -> str | None:
    """What DRF's DateTimeField shows, without its per-value timezone lookups.

    An aware time goes to the current timezone, ISO 8601, UTC as ``Z``; a
    list of 50 executions has 500 of them, and DRF's lookups were a third of
    the request. ``tz``: the current timezone, when the caller has it at hand.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        return _DATETIME.to_representation(value)  # type: ignore[no-any-return]
    text = value.astimezone(tz or timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def task_run_data(task_run: TaskRun, tz: tzinfo | None = None) -> dict[str, Any]:
    """What TaskRunSerializer gives, built directly (``tz``: as for ``moment``).

    A list of 50 executions has hundreds of task runs; a nested serializer
    per execution spent most of the request building fields.
    """
    tz = tz or timezone.get_current_timezone()

    return {
        "task_id": str(task_run.task_id),
        "task_name": task_run.task_name,
        "task_type": task_run.task_type,
        "status": task_run.status,
        "retry_count": task_run.retry_count,
        "attempt": task_run.attempt,
        "depends_on": task_run.depends_on,
        "started_at": moment(task_run.started_at, tz),
        "ended_at": moment(task_run.ended_at, tz),
        "next_check_at": moment(next_check_at(task_run), tz),
        "error": task_run.error,
        "metrics": task_run.metrics,
        "output": task_run.output,
    }


class ExecutionMetricsSerializer(serializers.Serializer):
    tasks_completed = serializers.IntegerField()
    rows_read = serializers.IntegerField()
    rows_written = serializers.IntegerField()
    duration_seconds = serializers.FloatField(allow_null=True)


def _total(task_runs: list[TaskRun], key: str) -> int:
    total = 0
    for task_run in task_runs:
        value = (task_run.metrics or {}).get(key) or 0
        total += int(value) if isinstance(value, (int, float)) else 0
    return total


def execution_metrics(execution: Any, task_runs: list[Any]) -> dict[str, Any]:
    """The stored metrics of a finished execution; live ones while it runs.

    ``execution`` and ``task_runs``: models, or rows with the same attributes.
    """
    stored = dict(execution.metrics or {})
    if execution.status in EXECUTION_FINISHED and stored:
        return stored
    duration = None
    if execution.started_at is not None:
        end = execution.ended_at or timezone.now()
        duration = round((end - execution.started_at).total_seconds(), 3)
    return {
        "tasks_completed": sum(1 for tr in task_runs if tr.status == TaskRunStatus.SUCCESS),
        "rows_read": _total(task_runs, "rows_read"),
        "rows_written": _total(task_runs, "rows_written"),
        "duration_seconds": duration,
        **stored,
    }


_moment = serializers.DateTimeField()


class ExecutionSerializer(serializers.ModelSerializer):
    """An execution with its task runs (prefetch ``tasks`` for lists)."""

    pipeline_id = serializers.UUIDField(read_only=True)
    pipeline_name = serializers.CharField(source="pipeline.name", read_only=True)
    pipeline_version = serializers.IntegerField(source="version.version", read_only=True)
    trigger = serializers.ChoiceField(choices=Trigger.choices, read_only=True)
    created_by = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    tasks = serializers.SerializerMethodField()
    rerun_of = serializers.UUIDField(source="rerun_of_id", read_only=True, allow_null=True)
    triggered_by = serializers.SerializerMethodField()

    class Meta:
        model = Execution
        fields = [
            "execution_id",
            "pipeline_id",
            "pipeline_name",
            "pipeline_version",
            "status",
            "trigger",
            "parameters",
            "metrics",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "ended_at",
            "logical_date",
            "data_interval_start",
            "data_interval_end",
            "rerun_of",
            "triggered_by",
            "tasks",
        ]
        read_only_fields = fields

    def _task_runs(self, obj: Execution) -> list[TaskRun]:
        return _in_order(obj.tasks.all())  # uses the prefetch when there is one

    @extend_schema_field(
        {
            "type": "array",
            "description": "the asset events a trigger=asset execution consumed",
            "items": {
                "type": "object",
                "properties": {
                    "event_id": {"type": "integer"},
                    "asset": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                },
            },
        }
    )
    def get_triggered_by(self, obj: Execution) -> list[dict[str, Any]]:
        return [
            {"event_id": e.pk, "asset": e.asset.name, "at": _moment.to_representation(e.at)}
            for e in obj.triggered_by.select_related("asset").order_by("at", "pk")
        ]

    @extend_schema_field({"type": "string", "nullable": True})
    def get_created_by(self, obj: Execution) -> str | None:
        return _username(obj.created_by)

    @extend_schema_field(ExecutionMetricsSerializer)
    def get_metrics(self, obj: Execution) -> dict[str, Any]:
        return execution_metrics(obj, list(obj.tasks.all()))

    @extend_schema_field(TaskRunSerializer(many=True))
    def get_tasks(self, obj: Execution) -> Any:
        return [task_run_data(task_run) for task_run in self._task_runs(obj)]


def _in_order(task_runs: Iterable[Any]) -> list[Any]:
    # Started ones first, by start time, then the rest by name, on any database.
    return sorted(
        task_runs, key=lambda tr: (tr.started_at is None, tr.started_at or _EPOCH, tr.task_name)
    )


# What ExecutionSerializer gives, read with values(): answer key -> ORM path.
EXECUTION_VALUES = {
    "execution_id": "execution_id",
    "pipeline_id": "pipeline_id",
    "pipeline_name": "pipeline__name",
    "pipeline_version": "version__version",
    "status": "status",
    "trigger": "trigger",
    "parameters": "parameters",
    "metrics": "metrics",
    "error": "error",
    "created_by": "created_by__username",
    "created_at": "created_at",
    "started_at": "started_at",
    "ended_at": "ended_at",
    "logical_date": "logical_date",
    "data_interval_start": "data_interval_start",
    "data_interval_end": "data_interval_end",
    "rerun_of": "rerun_of_id",
}
_DATETIME_FIELDS = {
    f.name for f in Execution._meta.fields if f.get_internal_type() == "DateTimeField"
}
_MOMENTS = tuple(key for key, path in EXECUTION_VALUES.items() if path in _DATETIME_FIELDS)


def execution_rows(executions: Any) -> Any:
    """``executions`` as the ``values()`` that ``execution_data`` renders (one query, no models)."""
    return executions.values(*EXECUTION_VALUES.values())


def task_run_values(task_runs: Any) -> Any:
    """``task_runs`` as the ``values()`` that ``task_run_data`` renders (with ``execution_id``)."""
    return task_runs.values(*TaskRunSerializer.Meta.fields, "execution_id")


def task_run_rows(execution_ids: list[Any], rows: Any = None) -> dict[Any, list[Any]]:
    """The task runs of these executions (the fields TaskRunSerializer shows), per execution.

    ``rows``: their ``task_run_values`` already read (else one query).
    """
    if rows is None:
        rows = task_run_values(TaskRun.objects.filter(execution_id__in=execution_ids))
    out: dict[Any, list[Any]] = {pk: [] for pk in execution_ids}
    for row in rows:
        out[row["execution_id"]].append(SimpleNamespace(**row))
    return out


def execution_data(row: dict[str, Any], task_runs: list[Any]) -> dict[str, Any]:
    """What ExecutionSerializer gives, from an ``execution_rows`` row and its ``task_run_rows``.

    A list of 50 executions built 50 models, their task runs' models and a
    serializer's fields; this builds the answer from the rows directly.
    """
    data = {key: row[path] for key, path in EXECUTION_VALUES.items()}
    runs = _in_order(task_runs)
    data["metrics"] = execution_metrics(SimpleNamespace(**data), runs)
    tz = timezone.get_current_timezone()
    for key in _MOMENTS:
        data[key] = moment(data[key], tz)
    data["execution_id"] = str(data["execution_id"])
    data["pipeline_id"] = str(data["pipeline_id"])
    if data["rerun_of"] is not None:
        data["rerun_of"] = str(data["rerun_of"])
    data["tasks"] = [task_run_data(task_run, tz) for task_run in runs]
    return data


class ExecutionStatusSerializer(serializers.Serializer):
    """``{execution_id, status, tasks: {name: status}}``: cheap to poll."""

    execution_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ExecutionStatus.choices)
    tasks = serializers.DictField(child=serializers.CharField())


class ExecutionFilterSerializer(CursorQuery):
    """Query parameters of ``GET /executions`` (``cursor``: from a next or previous link)."""

    pipeline = serializers.CharField(required=False, max_length=100, help_text="id or name")
    status = serializers.ChoiceField(choices=ExecutionStatus.choices, required=False)
    trigger = serializers.ChoiceField(choices=Trigger.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="created at or after")
    until = serializers.DateTimeField(required=False, help_text="created at or before")


class RerunSerializer(serializers.Serializer):
    from_task = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text="rerun this task and its downstream",
    )


class LogQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(required=False, default=-1, min_value=-1, max_value=2**31)
    limit = serializers.IntegerField(required=False, default=1000, min_value=1, max_value=5000)


class LogLineSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    attempt = serializers.IntegerField()
    at = serializers.DateTimeField()
    level = serializers.CharField()
    message = serializers.CharField()


class TaskLogSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    task_name = serializers.CharField()
    status = serializers.CharField()
    lines = LogLineSerializer(many=True)
    next_after = serializers.IntegerField(help_text="pass as `after` to get the lines that follow")
