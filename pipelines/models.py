"""Pipelines, their immutable versions, executions, task runs and transitions.

State changes never happen here: each is a move of ``pipelines.engine``
(its table in ``pipelines.engine.transitions``) that checks the current
state, records a ``Transition`` and is safe under concurrency.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


class ExecutionStatus(models.TextChoices):
    # Each comment names the move (pipelines.engine.transitions) that sets it.
    QUEUED = "queued"  # created so; waits for a max_active_runs slot
    RUNNING = "running"  # start: a slot was free, its first tasks are enqueued
    CANCELLING = "cancelling"  # cancel: running tasks stop at their next check
    SUCCESS = "success"  # succeed: every task succeeded or was skipped
    FAILED = "failed"  # fail: some task did not succeed (or the run was refused)
    CANCELLED = "cancelled"  # stop: the last task of a cancelled run finished


class TaskRunStatus(models.TextChoices):
    PENDING = "pending"  # created with the execution; upstreams not done
    QUEUED = "queued"  # enqueue: a message is on the broker
    RUNNING = "running"  # claim: a worker holds the lease
    SUCCESS = "success"  # succeed
    FAILED = "failed"  # fail (no retries left or not retryable), or refuse
    UP_FOR_RETRY = "up_for_retry"  # retry: waits for next_retry_at
    WAITING = "waiting"  # wait: a sensor's condition was false; waits for next_check_at
    SKIPPED = "skipped"  # skip: a rerun carries a success over
    UPSTREAM_FAILED = "upstream_failed"  # block: an upstream did not succeed
    CANCELLED = "cancelled"  # cancel (before it ran) or stop (by its worker)


EXECUTION_FINISHED = frozenset(
    {ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
EXECUTION_ACTIVE = frozenset(
    {ExecutionStatus.QUEUED, ExecutionStatus.RUNNING, ExecutionStatus.CANCELLING}
)
# Started and not finished: what counts against a pipeline's max_active_runs.
EXECUTION_HOLDING_SLOT = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.CANCELLING})
TASK_FINISHED = frozenset(
    {
        TaskRunStatus.SUCCESS,
        TaskRunStatus.FAILED,
        TaskRunStatus.SKIPPED,
        TaskRunStatus.UPSTREAM_FAILED,
        TaskRunStatus.CANCELLED,
    }
)
TASK_ACTIVE = frozenset(
    {
        TaskRunStatus.PENDING,
        TaskRunStatus.QUEUED,
        TaskRunStatus.RUNNING,
        TaskRunStatus.UP_FOR_RETRY,
        TaskRunStatus.WAITING,
    }
)
# Not finished and past pending. A waiting sensor is in flight (its execution
# goes on running) but holds no worker process.
TASK_IN_FLIGHT = frozenset(
    {
        TaskRunStatus.QUEUED,
        TaskRunStatus.RUNNING,
        TaskRunStatus.UP_FOR_RETRY,
        TaskRunStatus.WAITING,
    }
)
# Upstream outcomes that let a downstream task start.
TASK_DONE_OK = frozenset({TaskRunStatus.SUCCESS, TaskRunStatus.SKIPPED})


class Trigger(models.TextChoices):
    MANUAL = "manual"
    API = "api"
    SCHEDULE = "schedule"
    BACKFILL = "backfill"
    RERUN = "rerun"
    ASSET = "asset"  # every asset of its schedule had an event (SPEC §8)


class PipelineQuerySet(models.QuerySet["Pipeline"]):
    def enabled(self) -> PipelineQuerySet:
        return self.filter(enabled=True)

    def scheduled(self) -> PipelineQuerySet:
        return self.enabled().exclude(schedule="")

    def asset_scheduled(self) -> PipelineQuerySet:
        """Enabled pipelines whose schedule is a list of assets."""
        return self.enabled().exclude(schedule_assets=[])


class Pipeline(models.Model):
    pipeline_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # The normalized definition of the current version (SPEC §2).
    definition = models.JSONField()
    version = models.PositiveIntegerField(default=1)
    enabled = models.BooleanField(default=True)
    schedule = models.CharField(max_length=100, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    catchup = models.BooleanField(default=False)
    max_active_runs = models.PositiveIntegerField(default=16)
    tags = models.JSONField(default=list, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    # Start of the next cron interval the scheduler has not created a run for.
    next_interval_start = models.DateTimeField(null=True, blank=True)
    # ``schedule: {assets: [...]}``: the asset names (pipelines.assets) whose
    # events start a run; ``schedule`` is then empty.
    schedule_assets = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pipelines",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PipelineQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("operate_pipeline", "Can execute, cancel and rerun the pipeline")]

    def __str__(self) -> str:
        return self.name


class PipelineVersion(models.Model):
    """One immutable definition of a pipeline; executions point at the one they ran."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    definition = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pipeline", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "version"], name="uniq_pipeline_version")
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name} v{self.version}"


class ConnectionBinding(models.Model):
    """A connection a pipeline version uses, bound by id (SPEC §9 "Connections by identity").

    The definition names connections for humans; runs resolve a name through
    their version's bindings, so renaming a connection keeps old versions
    working and a connection deleted and created again under the same name is
    never picked up by a version made before.
    """

    version = models.ForeignKey(PipelineVersion, on_delete=models.CASCADE, related_name="bindings")
    # The name the version's definition uses for the connection.
    name = models.CharField(max_length=100)
    # NULL once the connection is deleted: the binding stays, so a run of this
    # version fails naming the connection instead of finding another by name.
    connection = models.ForeignKey(
        "connectors.Connection",
        null=True,
        on_delete=models.SET_NULL,
        related_name="pipeline_bindings",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "name"], name="uniq_binding_name")
        ]

    def __str__(self) -> str:
        return f"{self.version}: {self.name} → {self.connection_id}"

    @staticmethod
    def gone(name: str) -> str:
        """Why a run cannot use a binding whose connection was deleted."""
        return (
            f"connection '{name}' no longer exists: it was deleted after this version "
            "of the pipeline was made"
        )


class ExecutionQuerySet(models.QuerySet["Execution"]):
    def active(self) -> ExecutionQuerySet:
        return self.filter(status__in=EXECUTION_ACTIVE)

    def finished(self) -> ExecutionQuerySet:
        return self.filter(status__in=EXECUTION_FINISHED)

    def queued(self) -> ExecutionQuerySet:
        return self.filter(status=ExecutionStatus.QUEUED)

    def holding_slot(self) -> ExecutionQuerySet:
        """Started and not finished: each holds one of max_active_runs."""
        return self.filter(status__in=EXECUTION_HOLDING_SLOT)

    def for_pipeline(self, pipeline: Pipeline) -> ExecutionQuerySet:
        return self.filter(pipeline=pipeline)


class Execution(models.Model):
    execution_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="executions")
    version = models.ForeignKey(PipelineVersion, on_delete=models.RESTRICT, related_name="+")
    status = models.CharField(
        max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.QUEUED
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    # Resolved parameters: pipeline defaults, overrides and the built-ins.
    parameters = models.JSONField(default=dict, blank=True)
    logical_date = models.DateTimeField(null=True, blank=True)
    data_interval_start = models.DateTimeField(null=True, blank=True)
    data_interval_end = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # The asset events a trigger=asset execution consumed (SPEC §8).
    triggered_by: models.ManyToManyField[AssetEvent, AssetTrigger] = models.ManyToManyField(
        "AssetEvent", through="AssetTrigger", related_name="consumers", blank=True
    )

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["pipeline", "status"], name="exec_pipeline_status"),
            models.Index(fields=["started_at"], name="exec_started_at"),
            models.Index(fields=["created_at"], name="exec_created_at"),
            models.Index(fields=["status", "created_at"], name="exec_status_created"),
            # The runs list of one pipeline (or of the few a user sees), newest first.
            models.Index(fields=["pipeline", "created_at"], name="exec_pipeline_created"),
            # What finished since the last answer stored (pipelines.answers).
            models.Index(fields=["ended_at"], name="exec_ended_at"),
        ]
        constraints = [
            # Exactly one scheduled run per pipeline and interval, whatever the
            # number of workers racing on the same cron tick.
            models.UniqueConstraint(
                fields=["pipeline", "data_interval_start"],
                condition=Q(trigger="schedule"),
                name="uniq_scheduled_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id}:{self.execution_id}"

    @property
    def pipeline_version(self) -> int:
        return self.version.version

    @property
    def is_finished(self) -> bool:
        return self.status in EXECUTION_FINISHED


class ExecutionAnswer(models.Model):
    """A finished execution's API answer, stored once (``pipelines.answers``).

    A table of its own, not a column of Execution: the answers (a few KB
    each) would make every scan of executions (the dashboard's week, the
    metrics) read several times as many pages.
    """

    execution = models.OneToOneField(
        Execution, primary_key=True, on_delete=models.CASCADE, related_name="answer"
    )
    # The execution's ended_at: where maintenance goes on from.
    ended_at = models.DateTimeField(db_index=True)
    text = models.TextField()

    def __str__(self) -> str:
        return f"answer of {self.execution_id}"


class TaskRunQuerySet(models.QuerySet["TaskRun"]):
    def active(self) -> TaskRunQuerySet:
        return self.filter(status__in=TASK_ACTIVE)

    def finished(self) -> TaskRunQuerySet:
        return self.filter(status__in=TASK_FINISHED)

    def in_flight(self) -> TaskRunQuerySet:
        """On the broker, on a worker, waiting for its retry or for its next check."""
        return self.filter(status__in=TASK_IN_FLIGHT)


class TaskRun(models.Model):
    task_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="tasks")
    task_name = models.CharField(max_length=100)
    task_type = models.CharField(max_length=32)
    status = models.CharField(
        max_length=16, choices=TaskRunStatus.choices, default=TaskRunStatus.PENDING
    )
    # Names of the task runs (not definition tasks) this one waits for, and
    # of those that wait for it. ``waiting_for`` counts upstreams not yet
    # succeeded, so finishing a task touches only its direct downstream rows
    # instead of re-reading the whole execution (fan-outs of thousands).
    depends_on = models.JSONField(default=list, blank=True)
    downstream = models.JSONField(default=list, blank=True)
    waiting_for = models.PositiveIntegerField(default=0)
    # The task's normalized definition, so a worker needs no other row.
    spec = models.JSONField(default=dict, blank=True)
    # The definition task this run executes; differs from task_name only for
    # the chunks of a partitioned copy ("copy_orders[3]").
    definition_task = models.CharField(max_length=100)
    chunk_index = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(null=True, blank=True)
    # Fencing token: bumped by every claim. A worker writes only while the row
    # still carries the attempt it claimed, so a stale worker cannot write.
    attempt = models.PositiveIntegerField(default=0)
    retry_count = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    # When the reaper queues a waiting sensor for its next check (SPEC §8).
    next_check_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # What the task hands downstream ({output: [task, key]}, SPEC §8): a JSON
    # object of at most 64 KiB, set when the run succeeds; null before.
    output = models.JSONField(null=True, blank=True)

    objects = TaskRunQuerySet.as_manager()

    class Meta:
        ordering = ["execution", "started_at", "task_name"]
        indexes = [
            models.Index(fields=["execution", "status"], name="taskrun_exec_status"),
            # The reaper scans running rows by heartbeat and queued rows by age.
            models.Index(fields=["status", "heartbeat_at"], name="taskrun_status_heartbeat"),
            models.Index(fields=["status", "queued_at"], name="taskrun_status_queued"),
            models.Index(fields=["status", "next_retry_at"], name="taskrun_status_retry"),
            models.Index(fields=["status", "next_check_at"], name="taskrun_status_check"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["execution", "task_name"], name="uniq_task_per_exec")
        ]

    def __str__(self) -> str:
        return f"{self.task_name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in TASK_FINISHED

    @property
    def output_json(self) -> str:
        """The output as indented JSON (for pages), or "" before the run succeeded."""
        return "" if self.output is None else json.dumps(self.output, indent=2, ensure_ascii=False)


class Transition(models.Model):
    """One row per state change of an execution or a task run (who, when, why)."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="transitions")
    task_run = models.ForeignKey(
        TaskRun, null=True, blank=True, on_delete=models.CASCADE, related_name="transitions"
    )
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    actor = models.CharField(max_length=200)  # "user:alice", "worker:host:pid", "reaper"
    reason = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["execution", "at"], name="transition_exec_at")]

    def __str__(self) -> str:
        target = self.task_run.task_name if self.task_run is not None else "execution"
        return f"{target}: {self.from_status} → {self.to_status}"


class TaskLogLine(models.Model):
    """Captured log of a task run, bounded by TASK_LOG_MAX_LINES per run."""

    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="log_lines")
    attempt = models.PositiveIntegerField()
    seq = models.PositiveBigIntegerField()
    at = models.DateTimeField()
    level = models.CharField(max_length=10)
    message = models.TextField()

    # seq = attempt * SEQ_PER_ATTEMPT + line number: the worker numbers its
    # own lines without reading, and seq still grows across attempts (tailing).
    SEQ_PER_ATTEMPT = 1_000_000

    class Meta:
        ordering = ["task_run", "seq"]
        indexes = [models.Index(fields=["task_run", "seq"], name="tasklog_run_seq")]


class Watermark(models.Model):
    """Last copied value of an incremental copy; advanced only on success."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="watermarks")
    task_name = models.CharField(max_length=100)
    column = models.CharField(max_length=100)
    value: Any = models.JSONField(null=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "task_name"], name="uniq_watermark")
        ]


class IdempotencyKey(models.Model):
    """Execute requests deduplicated per user, pipeline and key for 24 h."""

    key = models.CharField(max_length=200)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "pipeline", "key"], name="uniq_idempotency")
        ]


class Asset(models.Model):
    """A table or file pipelines write, named ``<connection>.<schema>.<table>`` (SPEC §8).

    Seen by whoever may see ``connection`` (an admin only once it is deleted).
    Made at the first event recorded for it, or when a pipeline's schedule
    first waits for it.
    """

    name = models.CharField(max_length=400, unique=True)
    connection = models.ForeignKey(
        "connectors.Connection", null=True, on_delete=models.SET_NULL, related_name="assets"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AssetEvent(models.Model):
    """One successful write of an asset by a task run."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="events")
    # What wrote it; kept (null) when the run or pipeline is deleted later.
    pipeline = models.ForeignKey(
        Pipeline, null=True, on_delete=models.SET_NULL, related_name="asset_events"
    )
    execution = models.ForeignKey(
        Execution, null=True, on_delete=models.SET_NULL, related_name="asset_events"
    )
    task_run = models.ForeignKey(
        TaskRun, null=True, on_delete=models.SET_NULL, related_name="asset_events"
    )
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["asset", "at"], name="assetevent_asset_at")]

    def __str__(self) -> str:
        return f"{self.asset_id} @ {self.at.isoformat()}"


class AssetTrigger(models.Model):
    """An event consumed by an asset-triggered execution (``Execution.triggered_by``).

    A pipeline consumes an event at most once, whatever the number of
    schedulers racing: the unique constraint makes a second execution for
    the same events fail, not luck. The row outlives its execution (pruned
    by retention): the pipeline has still consumed the event.
    """

    execution = models.ForeignKey(Execution, null=True, on_delete=models.SET_NULL, related_name="+")
    event = models.ForeignKey(AssetEvent, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "event"], name="uniq_asset_event_consumed")
        ]
