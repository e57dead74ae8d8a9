"""Signals other apps hook into (metrics, alerts) without the engine knowing them."""

from django.dispatch import Signal

# Sent after commit when an execution reached a finished state; kwarg execution_id.
execution_finished = Signal()
# Sent after commit when a task run finished or failed into up_for_retry;
# kwargs task_id, task_type, status.
task_run_finished = Signal()
