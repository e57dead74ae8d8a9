"""Task outputs (SPEC §8): what a successful run hands downstream, and the references to it.

A run's output is a JSON object of at most 64 KiB: what the task type set
on ``ctx.output`` (a ``python`` function's return value), else its
``output_metrics`` picked from the run's metrics. A task refers to an
upstream task's output with ``{output: [task, key]}``; the engine replaces
each reference by its value before the task runs, so the task types see
literals there.
"""

from __future__ import annotations

import json
from typing import Any

from core.checker import kind
from pipelines.models import Execution, TaskRun, TaskRunStatus
from pipelines.tasktypes.base import TaskContext, TaskFailed, TaskType

OUTPUT_MAX_BYTES = 64 * 1024
# Reruns carry successes over as skipped runs: their outputs are in the
# execution rerun, or in the one before it.
_MAX_RERUN_DEPTH = 100


def output_of(task_type: TaskType, ctx: TaskContext) -> dict[str, Any]:
    """The run's output as stored: a JSON object within OUTPUT_MAX_BYTES, or TaskFailed."""
    value = ctx.output
    if value is None:
        value = {key: ctx.metrics[key] for key in task_type.output_metrics if key in ctx.metrics}
    if not isinstance(value, dict):
        raise TaskFailed(f"the task's output must be a JSON object (a dict), got {kind(value)}")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TaskFailed(f"the task's output is not JSON-serialisable: {exc}") from None
    if "\\u0000" in text:
        raise TaskFailed("the task's output holds a NUL character, which JSON columns refuse")
    size = len(text.encode())
    if size > OUTPUT_MAX_BYTES:
        raise TaskFailed(
            f"the task's output is {size:,} bytes of JSON, over the limit of"
            f" {OUTPUT_MAX_BYTES:,} bytes (64 KiB)"
        )
    result: dict[str, Any] = json.loads(text)  # as it will read back: string keys, lists
    return result


def _is_ref(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"output"}
        and isinstance(value["output"], list)
        and len(value["output"]) == 2
    )


def _refs(value: Any) -> set[str]:
    """The tasks whose outputs ``value`` refers to."""
    if _is_ref(value):
        return {str(value["output"][0])}
    if isinstance(value, dict):
        return set().union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def _substitute(value: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    if _is_ref(value):
        task, key = value["output"]
        output = outputs.get(task, {})
        if key not in output:
            keys = ", ".join(sorted(output)) or "none"
            raise TaskFailed(
                f"{{output: [{task}, {key}]}}: the output of task {task!r} has no key {key!r}"
                f" (its keys: {keys})"
            )
        return output[key]
    if isinstance(value, dict):
        return {k: _substitute(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, outputs) for v in value]
    return value


def with_upstream_outputs(task_run: TaskRun, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with every ``{output: [task, key]}`` replaced by its value.

    A missing key fails the task naming the task and the key. A
    partitioned copy's output is its chunks' outputs summed (numbers) or
    the first chunk's (anything else).
    """
    wanted = _refs(spec)
    if not wanted:
        return spec
    return _substitute(spec, upstream_outputs(task_run.execution_id, wanted))


def upstream_outputs(execution_id: Any, tasks: set[str]) -> dict[str, dict[str, Any]]:
    """The output of each of ``tasks`` (definition tasks) in this execution or those it reruns."""
    runs: dict[str, tuple[str, dict[str, Any]]] = {}  # task run name -> (task, output)
    names = set(
        TaskRun.objects.filter(execution_id=execution_id, definition_task__in=tasks).values_list(
            "task_name", flat=True
        )
    )
    current: Any = execution_id
    for _ in range(_MAX_RERUN_DEPTH):
        rows = TaskRun.objects.filter(
            execution_id=current, definition_task__in=tasks, status=TaskRunStatus.SUCCESS
        ).values_list("task_name", "definition_task", "output")
        for name, task, output in rows:
            runs.setdefault(name, (task, output or {}))
        if names <= set(runs):
            break
        current = Execution.objects.filter(pk=current).values_list("rerun_of_id", flat=True).first()
        if current is None:
            break
    merged: dict[str, dict[str, Any]] = {}
    for name in sorted(runs):
        task, output = runs[name]
        into = merged.setdefault(task, {})
        for key, value in output.items():
            old = into.get(key)
            if key not in into:
                into[key] = value
            elif _number(old) and _number(value):
                into[key] = old + value
    return merged


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
