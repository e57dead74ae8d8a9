"""``manage.py worker``: each death of a cluster process is healed or ends the command.

Real processes and real signals: the supervised cluster runs as
``manage.py worker``; django-q2's status report names its sentinel,
workers, monitor and pusher. The sentinel replaces a killed worker, monitor
or pusher, but that does not heal the cluster (a worker killed while
waiting for a task holds the task queue's lock: see ops.supervision), and a
killed sentinel leaves nothing to heal (plain ``qcluster`` exits 0 and
leaves the rest running orphaned). So each death, one process or all at
once, makes the command kill what is left and exit 1 within seconds, and
the next one runs what is queued. SIGTERM still stops it with 0; a Redis
restart does not stop it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
from django.test import Client

from ops import supervision
from pipelines.models import Execution
from pipelines.services import execution_create
from tests.ops.conftest import same_prefix
from tests.servers import PrivateRedis
from tests.workers import BASE_DIR, FINISHED, WorkerCluster, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]


@pytest.fixture
def supervised(workers: Callable[..., WorkerCluster]) -> WorkerCluster:
    cluster = workers(workers=1, env=same_prefix(), command="worker")
    wait_for(
        lambda: (stat := cluster.stat()) and stat.monitor and stat.pusher and stat.workers,
        timeout=60,
        what="a status report of the whole cluster",
    )
    return cluster


def roles(cluster: WorkerCluster) -> dict[str, list[int]]:
    stat = cluster.stat()
    assert stat is not None, cluster.output()[-3000:]
    return {
        "sentinel": [stat.sentinel],
        "worker": list(stat.workers),
        "monitor": [stat.monitor],
        "pusher": [stat.pusher],
    }


def kill(pids: list[int]) -> None:
    for pid in pids:
        assert pid > 0  # os.kill(0, ...) would kill this process group
        os.kill(pid, signal.SIGKILL)


def runs_a_pipeline(make_pipeline: Callable[..., Any]) -> None:
    pipeline = make_pipeline(f"after-{time.monotonic_ns()}")
    run = execution_create(pipeline=pipeline)

    def finished() -> str | None:
        status = Execution.objects.get(pk=run.pk).status
        return status if status in FINISHED else None

    assert wait_for(finished, timeout=60, what="a run queued after the kill") == "success"


@pytest.mark.parametrize("victims", ["worker", "monitor", "pusher", "sentinel", "everything"])
def test_a_killed_cluster_process_ends_the_command_with_a_failure(
    supervised: WorkerCluster,
    workers: Callable[..., WorkerCluster],
    make_pipeline: Callable[..., Any],
    victims: str,
) -> None:
    pids = roles(supervised)
    targets = sum(pids.values(), []) if victims == "everything" else pids[victims][:1]
    orphans = [psutil.Process(pid) for pid in sum(pids.values(), []) if pid not in targets]
    started = time.monotonic()
    kill(targets)
    code = wait_for(lambda: supervised.proc.poll(), timeout=15, what="the worker command to exit")
    assert code == 1, supervised.output()[-3000:]
    assert time.monotonic() - started < 10
    reason = "death (a queue lock may have died with it)"
    if victims in ("sentinel", "everything"):
        reason = "died (exit code -9)"
    assert reason in supervised.output()
    # What was left of the cluster was killed with it.
    assert not [p for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    # Its supervisor's next one runs what is queued.
    workers(workers=1, env=same_prefix(), command="worker")
    runs_a_pipeline(make_pipeline)


def test_sigterm_stops_it_cleanly(supervised: WorkerCluster) -> None:
    supervised.proc.send_signal(signal.SIGTERM)
    assert supervised.proc.wait(timeout=60) == 0, supervised.output()[-3000:]


def check(env: dict[str, str] | None = None) -> int:
    return subprocess.run(
        [sys.executable, "manage.py", "worker", "--check"],
        cwd=BASE_DIR,
        env={**os.environ, **same_prefix(), **(env or {})},
        capture_output=True,
        timeout=60,
    ).returncode


def test_the_health_check_and_readyz_see_its_heartbeat(supervised: WorkerCluster) -> None:
    wait_for(
        lambda: any(b.pid == supervised.proc.pid for b in supervision.heartbeats()),
        timeout=20,
        what="the worker's heartbeat",
    )
    # One worker per host, as in compose: forget those earlier tests killed.
    for beat in supervision.heartbeats():
        if beat.pid != supervised.proc.pid:
            supervision.withdraw(beat.host, beat.pid)
    assert check() == 0
    # A worker frozen as a whole: its heartbeat stops, /readyz names it.
    os.killpg(supervised.proc.pid, signal.SIGSTOP)
    try:
        beat = next(b for b in supervision.heartbeats() if b.pid == supervised.proc.pid)
        supervision.publish(
            supervision.Heartbeat(
                host=beat.host, pid=beat.pid, cluster=beat.cluster, healthy_at=time.time() - 120
            )
        )
        body = json.loads(Client().get("/readyz").content)
        [stale] = [w for w in body["stale_workers"] if w["pid"] == beat.pid]
        assert stale["host"] == beat.host and 120 <= stale["age_seconds"] < 180
        assert check() == 1
    finally:
        os.killpg(supervised.proc.pid, signal.SIGCONT)
    # Stopped on purpose: its heartbeat is withdrawn, not left to go stale.
    supervised.proc.send_signal(signal.SIGTERM)
    assert supervised.proc.wait(timeout=60) == 0
    assert not [b for b in supervision.heartbeats() if b.pid == supervised.proc.pid]
    assert check() == 1


def test_it_rides_out_a_redis_restart(
    workers: Callable[..., WorkerCluster], private_redis: PrivateRedis
) -> None:
    """Redis down is an outage, not a death: the worker stays up and healthy again."""
    env = {**same_prefix(), "REDIS_URL": private_redis.url()}
    cluster = workers(workers=1, env=env, command="worker")
    wait_for(lambda: check(env) == 0, timeout=60, what="a healthy worker on its Redis")
    private_redis.kill()
    time.sleep(5)
    assert cluster.proc.poll() is None, cluster.output()[-3000:]
    private_redis.start()
    wait_for(lambda: check(env) == 0, timeout=30, what="the worker healthy again")
    # The pusher leaves 10 s after its broker error, on purpose, and is replaced.
    wait_for(lambda: "reincarnated pusher" in cluster.output(), timeout=30, what="a new pusher")
    time.sleep(3)
    assert cluster.proc.poll() is None, cluster.output()[-3000:]
    assert check(env) == 0
