"""Private PostgreSQL and Redis servers listening where a test says (root only).

The machine's own services listen on 127.0.0.1, which a network namespace
cannot reach; these listen on the addresses given (a bridge address of
``tests.net.NetnsHosts`` and loopback) and are gone after ``stop()``.
PostgreSQL runs as user ``postgres`` (``runuser``), made by ``initdb`` in a
temporary directory, without fsync: a test server, not a durable one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.net import free_port


def _as_postgres(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class PrivatePostgres:
    def __init__(self, folder: Path, listen: list[str]) -> None:
        for program in ("initdb", "pg_ctl", "runuser"):
            if shutil.which(program) is None:
                raise FileNotFoundError(program)
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "postgres", "postgres")
        self.data = folder / "pgdata"
        made = _as_postgres(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        assert made.returncode == 0, made.stdout + made.stderr
        # initdb trusts loopback only; the hosts connect from 10.200.0.0/16.
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.200.0.0/16 trust\n")
        options = (
            f"-c listen_addresses='{','.join(listen)}' -p {self.port} -k {folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        started = _as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(folder / "postgres.log"),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr + self.log()

    def url(self, host: str, database: str = "postgres") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def log(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        _as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


class PrivateRedis:
    def __init__(self, listen: list[str]) -> None:
        if shutil.which("redis-server") is None:
            raise FileNotFoundError("redis-server")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", *listen, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(host=listen[0], port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def url(self, host: str) -> str:
        return f"redis://{host}:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(timeout=5)
