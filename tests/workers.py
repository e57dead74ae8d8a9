"""Real ``manage.py`` processes for tests: qcluster pointed at the test database, ``check``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent


def database_url_of_tests() -> str:
    """DATABASE_URL of the database this test process uses right now."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/{db['NAME']}"


def run_check(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py check <args>`` in a fresh process with only the given configuration."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "FERNET_KEYS",
            "DEBUG",
            "DATADOG_TESTING",
        }
    }
    clean.update({"DATADOG_VAR_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


class WorkerCluster:
    """One qcluster process tree; its log goes to a temp file shown on failure."""

    def __init__(
        self,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
        command: str = "qcluster",
    ) -> None:
        """``env`` overrides the test process's settings; ``wrap`` turns the command
        into another that runs it (in a network namespace: ``NetnsHosts.command``);
        ``command`` is the management command (``worker``: the supervised cluster)."""
        self.log = tempfile.NamedTemporaryFile(prefix="qcluster-", suffix=".log", delete=False)
        full_env = {
            **os.environ,
            "DATABASE_URL": database_url_of_tests(),
            "WORKERS": str(workers),
            "SECRET_KEY": settings.SECRET_KEY,
            "FERNET_KEYS": ",".join(settings.FERNET_KEYS),
            "DATA_ROOT": str(settings.DATA_ROOT),
            **(env or {}),
        }
        argv = [sys.executable, "manage.py", command]
        self.proc = subprocess.Popen(
            wrap(argv) if wrap else argv,
            cwd=BASE_DIR,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )

    def stat(self) -> Any:
        """django-q2's status report of this cluster (pids of its sentinel, workers,
        monitor and pusher), or None while there is none."""
        from django_q.status import Stat  # django_q reads the settings when imported

        return next((s for s in Stat.get_all() if s.pid == self.proc.pid), None)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, *, graceful: bool = False) -> None:
        """Kill the cluster (SIGKILL by default: tests need no clean shutdown)."""
        if graceful and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        # A killed maintainer leaves its lock until it expires; the next
        # test's cluster should not wait for that.
        from django.core.cache import cache

        from pipelines.tasks import MAINTAIN_LOCK

        cache.delete(MAINTAIN_LOCK)


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``predicate`` until truthy; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


FINISHED = frozenset({"success", "failed", "cancelled"})


def finished(execution: Any, timeout: float = 60) -> Any:
    """``execution`` once a worker has finished it (re-read from the database)."""

    def done() -> bool:
        execution.refresh_from_db()
        return execution.status in FINISHED

    wait_for(done, timeout=timeout, what=f"execution {execution.pk} to finish")
    return execution


def running(execution: Any, name: str, timeout: float = 30) -> Any:
    """The task run ``name`` of ``execution`` once a worker has claimed it."""

    def claimed() -> Any:
        task_run = execution.tasks.get(task_name=name)
        return task_run if task_run.status == "running" else None

    return wait_for(claimed, timeout=timeout, what=f"{name} to run")


def worker_pid(task_run: Any) -> int:
    """The pid of the worker process that holds ``task_run`` (``worker:host:pid``)."""
    return int(task_run.worker.rsplit(":", 1)[1])
