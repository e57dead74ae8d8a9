"""Worker supervision: the ``worker`` command's watch over its django-q2 cluster.

django-q2's sentinel re-spawns a dead worker, monitor or pusher within its
guard cycle (0.5 s), but that does not heal the cluster: its processes
share multiprocessing queues, and an idle worker waits for the next task
*holding* the task queue's read lock (``Queue.get`` blocks inside
``with self._rlock``). Killed there, it takes the lock with it: every other
worker, and the new one, wait for that lock forever, while the pusher keeps
taking messages from Redis into the dead queue (tried here: a run queued
after such a kill never ran). A monitor or pusher killed inside its queue's
lock does the same. And nothing watches the sentinel: killed, it leaves its
children running orphaned, with nobody to replace them or report their
status, and ``qcluster`` exits 0 (tried here; the issue saw one stay up
idle instead), which a supervisor restarting on failure ignores.

``ClusterWatch`` therefore treats any death the sentinel reports (its
"reincarnated ... after death" log records, forwarded by ``DeathReports``;
a recycled or timed-out worker is not a death) and a dead sentinel as a
cluster that cannot heal itself, and also checks, every second, that the
sentinel keeps its full set of processes and that its status report
(``Stat``) is fresh; the ``worker`` command exits non-zero when one fails so
that its supervisor starts a new cluster. A pusher that leaves on its own
after a broker error (it does, 10 s into a Redis outage) is not a death,
nor is a task worker that ends itself because its task (a python task)
ignored a cancel or timeout for 10 s: both leave while holding no lock.

Each ``worker`` command also publishes a heartbeat in the shared cache (the
last time it saw its cluster healthy); ``/readyz`` lists the ones that went
stale (a worker killed or frozen as a whole, a host lost) and
``manage.py worker --check`` (the compose health check) tests this host's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import psutil
from django.core.cache import cache
from django_q.brokers import Broker
from django_q.status import Stat

from pipelines.runner import ENDING_STUCK_WORKER

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "ops:worker:{host}:{pid}"
INDEX_KEY = "ops:workers"
# A heartbeat outlives its worker this long, so that /readyz can name it.
HEARTBEAT_TTL = 600
# A worker whose heartbeat is older than this is reported stale.
STALE_SECONDS = 60

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux): a killed sentinel's workers become ours to kill."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap_adopted(keep: int) -> None:
    """Reap exited orphans this subreaper adopted, never ``keep`` (the sentinel,
    whose exit status multiprocessing collects itself)."""
    for child in psutil.Process().children():
        if child.pid != keep and not _alive(child):
            try:
                os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_descendants(timeout: float = 5) -> int:
    """SIGKILL every descendant of this process; how many there were."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=timeout)
    return len(children)


class DeathReports(logging.Handler):
    """django-q2's records of a cluster process that died, forwarded through a pipe.

    Installed on the ``django-q`` logger before the cluster starts, so that
    the forked sentinel inherits it; the watching process reads ``pending()``.
    """

    MARKERS = ("after death", "after sudden death")
    # A process's own record before it exits on purpose, outside any queue
    # lock: the pusher after a broker error (10 s later a clean exit,
    # django_q/pusher.py), and a task worker whose task ignored a stop for
    # 10 s (pipelines.runner: it is inside a task, so it holds no queue lock).
    LEAVING = ("Failed to pull task from broker", ENDING_STUCK_WORKER)

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.leaving: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self.LEAVING):
            line = f"leaving {record.processName}"
        elif record.levelno >= logging.CRITICAL and any(m in message for m in self.MARKERS):
            line = message[:200].replace("\n", " ")
        else:
            return
        # One short write: atomic on a pipe, never interleaved.
        os.write(self.write_fd, line.encode() + b"\n")

    def pending(self) -> list[str]:
        """Deaths reported since the last call, less processes that exited on purpose."""
        try:
            data = os.read(self.read_fd, 65536)
        except BlockingIOError:
            return []
        deaths = []
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("leaving "):
                self.leaving.add(line.removeprefix("leaving "))
            elif not any(f" {name} " in line for name in self.leaving):
                deaths.append(line)
        return deaths


class ClusterWatch:
    """Whether a running cluster can still heal itself; ``check()`` names what cannot."""

    def __init__(
        self,
        *,
        sentinel_pid: int,
        cluster_id: Any,
        processes: int,
        broker: Broker,
        deaths: DeathReports | None = None,
        grace: float = 10.0,
        stale_after: float = 30.0,
    ) -> None:
        """``processes``: the sentinel's children when whole (workers, monitor, pusher).

        ``grace``: how long a child may stay missing (the sentinel replaces one
        within its guard cycle). ``stale_after``: how long the status report may
        be missing while the broker answers (a frozen or deadlocked sentinel).
        """
        self.sentinel_pid = sentinel_pid
        self.cluster_id = cluster_id
        self.processes = processes
        self.broker = broker
        self.deaths = deaths
        self.grace = grace
        self.stale_after = stale_after
        now = time.monotonic()
        self.short_since: float | None = None
        self.last_report = now
        self.last_healthy = time.time()

    def check(self) -> str | None:
        """None while healthy or healing; else why the cluster cannot heal itself."""
        now = time.monotonic()
        deaths = self.deaths.pending() if self.deaths is not None else []
        if deaths:
            return f"{deaths[0]} (a queue lock may have died with it)"
        try:
            sentinel = psutil.Process(self.sentinel_pid)
            if sentinel.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(self.sentinel_pid)
            children = [c for c in sentinel.children() if _alive(c)]
        except psutil.NoSuchProcess:
            return f"sentinel {self.sentinel_pid} died"
        if len(children) < self.processes:
            self.short_since = self.short_since or now
            if now - self.short_since > self.grace:
                return (
                    f"sentinel {self.sentinel_pid} has {len(children)} of {self.processes}"
                    f" processes for {now - self.short_since:.0f} s"
                )
        else:
            self.short_since = None
        try:
            report = self.broker.get_stat(Stat.get_key(self.cluster_id))
        except Exception:
            # The broker is down: an outage, not a death. The cluster
            # reconnects when it is back; the lease covers its tasks.
            return None
        if report:
            self.last_report = now
            if self.short_since is None:
                self.last_healthy = time.time()
        elif now - self.last_report > self.stale_after:
            silent = now - self.last_report
            return f"no status report from sentinel {self.sentinel_pid} for {silent:.0f} s"
        return None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass(frozen=True)
class Heartbeat:
    """One ``worker`` command as it last reported itself."""

    host: str
    pid: int
    cluster: str
    healthy_at: float  # epoch seconds: when it last saw its cluster healthy

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.healthy_at)

    @property
    def key(self) -> str:
        return HEARTBEAT_KEY.format(host=self.host, pid=self.pid)


def publish(beat: Heartbeat) -> None:
    """Record ``beat`` (and index it) in the shared cache; errors are logged, not raised."""
    try:
        cache.set(beat.key, beat.__dict__, HEARTBEAT_TTL)
        index = set(cache.get(INDEX_KEY) or ())
        if beat.key not in index:
            cache.set(INDEX_KEY, sorted(index | {beat.key}), None)
    except Exception:
        logger.debug("could not publish the worker heartbeat", exc_info=True)


def withdraw(host: str, pid: int) -> None:
    """Forget a worker that stops on purpose (its exit is not a lost heartbeat)."""
    key = HEARTBEAT_KEY.format(host=host, pid=pid)
    try:
        cache.delete(key)
        index = set(cache.get(INDEX_KEY) or ())
        if key in index:
            cache.set(INDEX_KEY, sorted(index - {key}), None)
    except Exception:
        logger.debug("could not withdraw the worker heartbeat", exc_info=True)


def heartbeats() -> list[Heartbeat]:
    """Every worker heartbeat still in the cache (expired ones leave the index)."""
    keys = list(cache.get(INDEX_KEY) or ())
    found = cache.get_many(keys) if keys else {}
    if len(found) < len(keys):
        cache.set(INDEX_KEY, sorted(found), None)
    return [Heartbeat(**found[key]) for key in sorted(found)]


def stale_heartbeats(stale_after: float = STALE_SECONDS) -> list[Heartbeat]:
    return [beat for beat in heartbeats() if beat.age > stale_after]


def this_host_healthy(stale_after: float = STALE_SECONDS) -> bool:
    """A ``worker`` command of this host saw its cluster healthy within ``stale_after``."""
    host = socket.gethostname()
    return any(beat.host == host and beat.age <= stale_after for beat in heartbeats())
