"""``python`` tasks in real qcluster worker processes (SPEC §8).

A function that ignores ``ctx.cancelled()`` is still running 10 s after its
timeout or its cancel: the watchdog records the run's end, then ends its
worker process; django-q2's sentinel starts a new one, and the next task
runs. One worker process (plus the maintenance one) so the replacement is
the one that must take the next task.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil
import pytest

from ops.supervision import heartbeats
from pipelines.models import Execution, ExecutionStatus, TaskLogLine, TaskRun, TaskRunStatus
from pipelines.services import execution_cancel, execution_create, pipeline_create
from tests.workers import WorkerCluster, finished, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]

ENV = {"PYTHON_TASK_MODULES": "tests.pyjobs"}


@pytest.fixture(autouse=True)
def allowed(settings: Any) -> None:
    settings.PYTHON_TASK_MODULES = ["tests.pyjobs"]


def py(name: str, function: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "python", "callable": f"tests.pyjobs.jobs:{function}", **extra}


def worker_pid(task_run: TaskRun) -> int:
    return int(task_run.worker.rsplit(":", 1)[1])


def worker_pids(cluster: WorkerCluster) -> set[int]:
    stat = cluster.stat()
    return set(stat.workers) if stat is not None else set()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stubborn_run(tmp_path: Path, name: str, **extra: Any) -> tuple[Execution, TaskRun, Path]:
    marker = tmp_path / f"{name}.marker"
    pipeline = pipeline_create(
        data={
            "name": name,
            "tasks": [py("stuck", "stubborn", kwargs={"marker": str(marker)}, **extra)],
        }
    )
    execution = execution_create(pipeline=pipeline)

    def running() -> TaskRun | None:
        task_run = execution.tasks.get()
        return task_run if task_run.status == TaskRunStatus.RUNNING and marker.exists() else None

    return execution, wait_for(running, timeout=60, what="the stubborn function to start"), marker


def next_task_runs(cluster: WorkerCluster, old_pid: int) -> TaskRun:
    """Another python task runs to success after the process was ended."""
    execution = execution_create(
        pipeline=pipeline_create(
            data={"name": f"after{old_pid}", "tasks": [py("add", "add", kwargs={"a": 40, "b": 2})]}
        )
    )
    finished(execution, timeout=60)
    task_run = execution.tasks.get()
    assert execution.status == ExecutionStatus.SUCCESS, (task_run.error, cluster.output()[-3000:])
    assert task_run.output == {"sum": 42}
    assert worker_pid(task_run) != old_pid
    return task_run


def ended_worker(task_run: TaskRun, cluster: WorkerCluster, before: set[int]) -> int:
    """The pid of the worker that ran ``task_run``: gone, and replaced in the cluster."""
    pid = worker_pid(task_run)
    assert pid in before
    wait_for(lambda: gone(pid), timeout=20, what=f"worker process {pid} to end")

    def replaced() -> bool:
        now = worker_pids(cluster)
        return len(now) == len(before) and bool(now - before)

    wait_for(replaced, timeout=30, what="the sentinel to start a new worker process")
    log = list(TaskLogLine.objects.filter(task_run=task_run).values_list("message", flat=True))
    assert f"still running 10s after it was told to stop: ending worker process {pid}" in log
    return pid


def started(workers: Any, **kwargs: Any) -> tuple[WorkerCluster, set[int]]:
    """One task worker process (and the maintenance one), python tasks allowed."""
    cluster = workers(workers=1, env=ENV, **kwargs)
    wait_for(lambda: len(worker_pids(cluster)) == 2, timeout=60, what="the cluster to start")
    return cluster, worker_pids(cluster)


def test_it_ends_the_worker_of_a_function_that_ignores_its_timeout(
    workers: Any, tmp_path: Path
) -> None:
    cluster, before = started(workers)
    execution, task_run, marker = stubborn_run(tmp_path, "stuck_timeout", timeout=2)
    finished(execution, timeout=40)
    task_run.refresh_from_db()
    assert marker.read_text() == "told to stop"  # ctx.cancelled() turned true
    assert task_run.status == TaskRunStatus.FAILED
    assert task_run.error == (
        "timed out after 2s; the task ignored it for 10s and its worker process was ended"
    )
    assert execution.status == ExecutionStatus.FAILED
    pid = ended_worker(task_run, cluster, before)
    next_task_runs(cluster, pid)


def test_it_ends_the_worker_of_a_function_that_ignores_a_cancel(
    workers: Any, tmp_path: Path
) -> None:
    cluster, before = started(workers)
    execution, task_run, marker = stubborn_run(tmp_path, "stuck_cancel")
    execution_cancel(execution=execution, reason="by test")
    finished(execution, timeout=40)
    task_run.refresh_from_db()
    assert marker.read_text() == "told to stop"
    assert task_run.status == TaskRunStatus.CANCELLED
    assert execution.status == ExecutionStatus.CANCELLED
    pid = ended_worker(task_run, cluster, before)
    assert pid != os.getpid()
    next_task_runs(cluster, pid)


def test_the_supervised_worker_keeps_its_cluster_when_a_stuck_task_ends_its_process(
    workers: Any, tmp_path: Path
) -> None:
    """``manage.py worker`` restarts its whole cluster on a death; this one is on purpose."""
    cluster, before = started(workers, command="worker")
    execution, task_run, _marker = stubborn_run(tmp_path, "stuck_supervised", timeout=2)
    finished(execution, timeout=40)
    task_run.refresh_from_db()
    assert task_run.status == TaskRunStatus.FAILED
    pid = ended_worker(task_run, cluster, before)
    assert "reincarnated worker" in cluster.output()  # the sentinel did see it go
    after = next_task_runs(cluster, pid)
    # The command checks its cluster every second: a check well after the
    # death was reported (the next task ran on the replacement) found it healthy.
    since = after.started_at.timestamp() + 2

    def checked() -> bool:
        return cluster.proc.poll() is not None or any(
            beat.pid == cluster.proc.pid and beat.healthy_at > since for beat in heartbeats()
        )

    wait_for(checked, timeout=30, what="the worker command to check its cluster again")
    assert cluster.proc.poll() is None, cluster.output()[-3000:]  # no cluster restart
