"""The run engine: every state change of executions and task runs.

Modules import one way only: ``transitions`` (the legal moves as data and
the two functions that make one) <- ``task_runs`` (moves of one task run:
enqueue, claim, lease, logs) <- ``executions`` (start, advance, finish,
cancel) <- ``attempts`` (what a worker or the reaper reports about an
attempt: claimed, succeeded, failed, cancelled) <- ``reaper``.
"""
