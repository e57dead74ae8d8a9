"""Signals other apps hook into (metrics, alerts) without the engine knowing them."""

from django.dispatch import Signal

# Sent after commit when an execution reached a finished state; kwargs
# execution_id, status (the state it reached).
execution_finished = Signal()
# Sent after commit when a task run finished or failed into up_for_retry;
# kwargs task_id, task_type, status.
task_run_finished = Signal()
# Sent before executions are pruned (pipelines.services.retention). Each
# receiver returns a datetime, and only executions created before the
# earliest one returned may be deleted, or None when none may be now
# (ops.metrics: its stored counter base must already count them).
prune_limit = Signal()
