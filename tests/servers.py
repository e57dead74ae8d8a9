"""Private PostgreSQL and Redis servers of one test or benchmark (root only).

Fault tests stop and restart these, never the machine's shared services.
They listen where the caller says (loopback by default; a bridge address of
``tests.net.NetnsHosts`` for the multi-host test) on ports of their own.
PostgreSQL runs as user ``postgres`` (``runuser``), made by ``initdb`` in the
caller's folder, without fsync: it survives its own crashes (``pg_ctl stop -m
immediate``), not the machine's. ``bench/chaos.py`` uses them too.

A missing program raises ``FileNotFoundError`` naming it; tests turn that
into ``tests.services.missing`` (a skip, or a failure in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import redis

from tests.net import free_port

LOOPBACK = ("127.0.0.1",)


def _require(*programs: str) -> None:
    for program in programs:
        if shutil.which(program) is None:
            raise FileNotFoundError(program)


def _as_postgres(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class PrivatePostgres:
    """``initdb`` at construction; ``start()``/``stop()`` as often as the caller likes."""

    def __init__(
        self,
        folder: Path,
        listen: Sequence[str] = LOOPBACK,
        trust_networks: Sequence[str] = (),
    ) -> None:
        _require("initdb", "pg_ctl", "runuser")
        self.folder = folder
        self.listen = list(listen)
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "postgres", "postgres")
        folder.chmod(0o700)
        self.data = folder / "pgdata"
        made = _as_postgres(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        assert made.returncode == 0, made.stdout + made.stderr
        # initdb trusts loopback only.
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.writelines(f"host all all {network} trust\n" for network in trust_networks)

    def start(self) -> None:
        options = (
            f"-c listen_addresses='{','.join(self.listen)}' -p {self.port} -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        started = _as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "postgres.log"),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr + self.log()

    def stop(self, mode: str = "immediate") -> None:
        """Stop it (``immediate``: as a crash would); a stopped server is left alone."""
        _as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, host: str = LOOPBACK[0], database: str = "postgres") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def log(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


class PrivateRedis:
    """A ``redis-server``; with ``folder`` it persists to an append-only file (as compose's)."""

    def __init__(self, listen: Sequence[str] = LOOPBACK, folder: Path | None = None) -> None:
        _require("redis-server")
        self.listen = list(listen)
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence = ["--appendonly", "no"]
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            persistence = ["--dir", str(self.folder), "--appendonly", "yes"]
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", *self.listen, "--port", str(self.port), "--save", "",
             *persistence, "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(host=self.listen[0], port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def url(self, host: str | None = None) -> str:
        return f"redis://{host or self.listen[0]}:{self.port}/0"

    def stop(self) -> None:
        """SIGTERM (Redis writes its file and leaves), SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, 9)
            self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
