"""``dbt`` task: a dbt project under DBT_PROJECTS_ROOT, run on a PostgreSQL connection (SPEC §8).

dbt (the optional extra ``[dbt]``) runs in a child process of the worker,
in its own process group, with a profile generated from the connection in a
private temporary folder (mode 0700, removed afterwards). The password is
not in that file either: the profile reads it from an environment variable
dbt treats as a secret (``DBT_ENV_SECRET_*``: masked in its logs). dbt's
target and log folders are in the temporary folder too, so the project
folder is only read.

dbt-postgres connects through libpq, which takes the addresses the outbound
policy checked from ``PGHOSTADDR`` (the profile has no ``hostaddr`` key):
the host is resolved and checked once, as for the ``postgresql`` connector,
and libpq dials only those addresses. ``PGREQUIREAUTH`` keeps the
connector's refusal of cleartext passwords.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess  # nosec B404 - dbt runs as a child process, argv built here, no shell
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import yaml

from connectors.base import ConnectorError, data_root, resolve_under, scrub
from core.checker import NAME_SCHEMA, Checker, at, quoted
from pipelines.tasktypes.base import (
    VALUES_SCHEMA,
    Key,
    TaskContext,
    TaskFailed,
    TaskType,
    bind_values,
    check_values,
)

COMMANDS = ("build", "run", "test", "seed", "snapshot")
INSTALL_HINT = "dbt is not installed on this host: install the extra with pip install '.[dbt]'"
# Seconds dbt gets to stop after SIGINT (it cancels its running queries in
# the database) before its process group is killed.
STOP_GRACE_SECONDS = 10.0
MAX_SELECT_LENGTH = 2000
# ``nodes`` in the output at most (a task output holds 64 KiB; see ``summary``).
NODES_MAX_BYTES = 60 * 1024
# dbt's statuses (run_results.json) that fail the task / that are skips.
FAILED = frozenset({"error", "fail", "runtime error"})
SKIPPED = frozenset({"skipped"})

# The worker's environment variables dbt sees (see ``environment``).
INHERITED = frozenset(
    {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)

_PROFILE = "datadog"
_TARGET = "task"
_PASSWORD_VARIABLE = "DBT_ENV_SECRET_DATADOG_PASSWORD"  # nosec B105 - a variable's name
# libpq 16 is the first to know require_auth (PGREQUIREAUTH); older ones ignore it.
_REQUIRE_AUTH_LIBPQ = 160000
_POLL_SECONDS = 0.25
_TAIL_LINES = 8


def dbt_installed() -> bool:
    """Whether dbt-core with dbt-postgres can be imported here."""
    try:
        return importlib.util.find_spec("dbt.adapters.postgres") is not None
    except ImportError:
        return False


def projects_root() -> Path:
    """DBT_PROJECTS_ROOT: Django's setting, or the environment's when Django is not configured."""
    # Imported here: the definition checker imports this module, and no Django
    # (docs/design.md); only a dbt task's check and run read the setting.
    from django.conf import settings

    if settings.configured:
        return Path(settings.DBT_PROJECTS_ROOT).resolve()
    return Path(os.environ.get("DBT_PROJECTS_ROOT") or data_root() / "dbt").resolve()


def project_dir(project: str) -> Path:
    """The folder of ``project``, confined to DBT_PROJECTS_ROOT (ConnectorError otherwise)."""
    root = projects_root()
    folder = resolve_under(root, project, what="project", root_name="DBT_PROJECTS_ROOT")
    if folder == root:
        raise ConnectorError(f"project {project!r}: name a folder under DBT_PROJECTS_ROOT")
    return folder


def select_problem(select: str) -> str | None:
    """Why ``select`` is not a dbt selection (space-separated selectors), or None."""
    if len(select) > MAX_SELECT_LENGTH:
        return f"must be at most {MAX_SELECT_LENGTH} characters"
    if not select.isprintable():
        return "control characters are refused"
    flags = [word for word in select.split() if word.startswith("-")]
    if flags:
        return f"{quoted(flags[0])}: selectors do not start with '-'"
    return None


def profile(kwargs: dict[str, Any]) -> dict[str, Any]:
    """profiles.yml for libpq keywords ``kwargs`` (the connector's ``checked_kwargs``).

    The password is not in it: dbt reads it from ``_PASSWORD_VARIABLE``.
    """
    output: dict[str, Any] = {
        "type": "postgres",
        "host": kwargs["host"],
        "port": int(kwargs["port"]),
        "user": kwargs["user"],
        "password": "{{ env_var('" + _PASSWORD_VARIABLE + "', '') }}",
        "dbname": kwargs["dbname"],
        "schema": "public",
        "threads": 4,
        "connect_timeout": int(kwargs["connect_timeout"]),
        "application_name": kwargs["application_name"],
        "retries": 0,
    }
    if kwargs.get("sslmode"):
        output["sslmode"] = kwargs["sslmode"]
    return {_PROFILE: {"target": _TARGET, "outputs": {_TARGET: output}}}


def environment(kwargs: dict[str, Any], folder: Path) -> dict[str, str]:
    """dbt's environment: a few of the worker's variables (``INHERITED``), then ours.

    Nothing else is passed on: a project's Jinja can read any variable
    (``env_var``), and the worker's hold the platform's secrets
    (SECRET_KEY, FERNET_KEYS, DATABASE_URL); libpq's own (PG*) could
    redirect the connection or add a password.
    """
    env = {k: v for k, v in os.environ.items() if k in INHERITED}
    env.update(
        {
            # libpq dials these (checked) addresses; host stays the name for TLS.
            "PGHOSTADDR": str(kwargs["hostaddr"]),
            "PGREQUIREAUTH": str(kwargs["require_auth"]),
            "PGOPTIONS": str(kwargs["options"]),
            _PASSWORD_VARIABLE: str(kwargs.get("password") or ""),
            "DBT_PROFILES_DIR": str(folder),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_VERSION_CHECK": "false",
            "DBT_USE_COLORS": "false",
            "DBT_LOG_FORMAT": "text",
            "DBT_PARTIAL_PARSE": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


def command_line(
    task: dict[str, Any], project: Path, folder: Path, dbt_vars: dict[str, Any]
) -> list[str]:
    """The dbt command: ``python -m dbt.cli.main <command> ...`` with its paths in ``folder``."""
    argv = [
        sys.executable,
        "-W",
        "ignore::RuntimeWarning",  # runpy's note about dbt.cli.main already imported
        "-m",
        "dbt.cli.main",
        task["command"],
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(folder),
        "--profile",
        _PROFILE,
        "--target",
        _TARGET,
        "--target-path",
        str(folder / "target"),
        "--log-path",
        str(folder / "logs"),
    ]
    if dbt_vars:
        argv += ["--vars", json.dumps(dbt_vars, default=str)]
    if task.get("select"):
        argv += ["--select", *task["select"].split()]
    return argv


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """``{nodes: {unique_id: status}, passed, failed, skipped}`` from run_results.json.

    When ``nodes`` would take more than NODES_MAX_BYTES of JSON (a task's
    output holds 64 KiB), it keeps only the nodes that did not end
    ``success`` or ``pass``, and ``nodes_omitted`` counts the others.
    """
    nodes = {str(r.get("unique_id")): str(r.get("status")) for r in results.get("results") or []}
    failed = sum(1 for status in nodes.values() if status in FAILED)
    skipped = sum(1 for status in nodes.values() if status in SKIPPED)
    out: dict[str, Any] = {
        "nodes": nodes,
        "passed": len(nodes) - failed - skipped,
        "failed": failed,
        "skipped": skipped,
    }
    if len(json.dumps(nodes, ensure_ascii=False).encode()) > NODES_MAX_BYTES:
        out["nodes"] = {k: v for k, v in nodes.items() if v not in ("success", "pass")}
        out["nodes_omitted"] = len(nodes) - len(out["nodes"])
    return out


def failures(results: dict[str, Any]) -> list[str]:
    """Each failed node: its unique id, status and the first line of dbt's message."""
    out = []
    for result in results.get("results") or []:
        if str(result.get("status")) in FAILED:
            message = str(result.get("message") or "").strip().splitlines()
            reason = f": {message[0][:300]}" if message else ""
            out.append(f"{result.get('unique_id')} ({result.get('status')}{reason})")
    return out


def _signal(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen[str], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop dbt: SIGINT to its group (dbt cancels its queries), then SIGKILL after ``grace``."""
    if proc.poll() is None:
        _signal(proc, signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal(proc, signal.SIGKILL)  # the group's stragglers too
    proc.wait()


class DbtTask(TaskType):
    """Run ``command`` of the dbt ``project`` on the PostgreSQL ``connection``.

    ``select`` narrows the nodes (dbt's ``--select``), ``vars`` are dbt's
    ``--vars`` (each a literal, ``{param: …}`` or ``{output: […]}``). The
    output counts the nodes by status; a failed node fails the task, named.
    """

    name: ClassVar[str] = "dbt"
    keys: ClassVar[dict[str, Key]] = {
        "connection": Key(NAME_SCHEMA, required=True),
        "project": Key({"type": "string", "minLength": 1}, required=True),
        "command": Key({"enum": list(COMMANDS)}, required=True),
        "select": Key({"type": "string", "minLength": 1, "maxLength": MAX_SELECT_LENGTH}),
        "vars": Key(VALUES_SCHEMA),
    }

    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        """Keys as given; the project confined to DBT_PROJECTS_ROOT; dbt installed here."""
        if not dbt_installed():
            c.add(at(path, "type"), INSTALL_HINT)
        out: dict[str, Any] = {"connection": None, "project": None, "command": None}
        if "connection" in task:
            out["connection"] = c.connection(at(path, "connection"), task["connection"])
        if "project" in task:
            ppath = at(path, "project")
            project = c.string(ppath, task["project"], nonempty=True)
            if project is not None:
                try:
                    project_dir(project)
                except ConnectorError as exc:
                    c.add(ppath, str(exc))
                else:
                    out["project"] = project
        if "command" in task:
            out["command"] = c.choice(at(path, "command"), task["command"], COMMANDS, "dbt command")
        if "select" in task:
            spath = at(path, "select")
            select = c.string(spath, task["select"], nonempty=True)
            problem = select_problem(select) if select is not None else None
            if problem:
                c.add(spath, problem)
            out["select"] = select
        if "vars" in task:
            # dbt's vars are their own names: they may repeat a pipeline parameter's.
            out["vars"] = check_values(c, at(path, "vars"), task["vars"], shadow=True)
        return out

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        if not dbt_installed():
            raise TaskFailed(INSTALL_HINT)
        try:
            project = project_dir(task["project"])
        except ConnectorError as exc:
            raise TaskFailed(str(exc)) from None
        if not (project / "dbt_project.yml").is_file():
            raise TaskFailed(
                f"project {task['project']!r}: no dbt_project.yml in that folder under"
                " DBT_PROJECTS_ROOT"
            )
        connector = ctx.connection(task["connection"])
        if connector.kind != "postgresql":
            raise TaskFailed(
                f"connection {task['connection']!r} ({connector.kind}): dbt tasks run on"
                " postgresql connections"
            )
        _check_libpq()
        dbt_vars = bind_values(task.get("vars") or {}, ctx.params)
        # Checks the host with the outbound policy now (ConnectorError when refused).
        kwargs = connector.checked_kwargs()  # type: ignore[attr-defined]
        # dbt's sessions carry this name, so a stop can end those still running.
        kwargs["application_name"] = f"datadog-dbt-{ctx.task_id}"[:63]
        with tempfile.TemporaryDirectory(prefix="datadog-dbt-") as tmp:
            folder = Path(tmp)
            folder.chmod(0o700)
            profiles = folder / "profiles.yml"
            fd = os.open(profiles, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                yaml.safe_dump(profile(kwargs), handle, sort_keys=False)
            argv = command_line(task, project, folder, dbt_vars)
            ctx.log(f"dbt {task['command']} in project {task['project']!r}")
            try:
                code, tail = _run(
                    ctx, argv, environment(kwargs, folder), folder, kwargs.get("password")
                )
            except BaseException:
                _end_sessions(ctx, connector, kwargs["application_name"])
                raise
            results_file = folder / "target" / "run_results.json"
            results = json.loads(results_file.read_text()) if results_file.is_file() else None
        self._report(ctx, task["command"], code, tail, results)

    def _report(
        self,
        ctx: TaskContext,
        command: str,
        code: int,
        tail: list[str],
        results: dict[str, Any] | None,
    ) -> None:
        """Set the output, or fail naming the failed nodes (or dbt's last lines)."""
        if results is None:
            raise TaskFailed(
                f"dbt {command} failed (exit code {code}) before running any node: "
                + " | ".join(tail)
            )
        out = summary(results)
        ctx.metrics.update({key: out[key] for key in ("passed", "failed", "skipped")})
        failed = failures(results)
        if failed:
            raise TaskFailed(f"dbt {command}: {len(failed)} failed: " + "; ".join(failed))
        if code != 0:
            raise TaskFailed(f"dbt {command} failed (exit code {code}): " + " | ".join(tail))
        ctx.output = out


def _end_sessions(ctx: TaskContext, connector: Any, application_name: str) -> None:
    """End dbt's sessions still in the database after dbt was stopped.

    dbt cancels its queries on SIGINT, but not always within the grace
    period; a killed client leaves its query running on the server.
    """
    try:
        with connector.connect() as conn:
            ended = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                [application_name],
            ).fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - the stop itself is what gets reported
        ctx.log(f"could not end dbt's sessions: {type(exc).__name__}", "WARNING")
        return
    if ended:
        ctx.log(f"ended {ended} session(s) dbt left in the database", "WARNING")


def _check_libpq() -> None:
    """Refuse a libpq under dbt-postgres (psycopg2) too old to refuse cleartext passwords."""
    try:
        import psycopg2  # an optional dependency: imported only where dbt runs
    except ImportError:
        raise TaskFailed(INSTALL_HINT) from None
    version = int(psycopg2.extensions.libpq_version())
    if version < _REQUIRE_AUTH_LIBPQ:
        raise TaskFailed(
            f"dbt's libpq {version} cannot refuse cleartext passwords;"
            " version 16 or newer is needed"
        )


def _run(
    ctx: TaskContext, argv: list[str], env: dict[str, str], folder: Path, password: Any
) -> tuple[int, list[str]]:
    """Run dbt, its lines into the task log; stop it on cancel or timeout.

    Returns its exit code and its last lines.
    """
    proc = subprocess.Popen(  # nosec B603 - argv built above, no shell
        argv,
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group, stopped as one
    )
    tail: deque[str] = deque(maxlen=_TAIL_LINES)

    def read() -> None:
        for raw in proc.stdout or ():
            line = scrub(raw.rstrip(), password)
            if line.strip():
                tail.append(line.strip())
                ctx.log(line)

    reader = threading.Thread(target=read, daemon=True, name=f"dbt-log-{ctx.task_id}")
    reader.start()

    def interrupt() -> None:  # from the engine's watchdog: dbt cancels its queries
        _signal(proc, signal.SIGINT)

    ctx.on_cancel(interrupt)
    try:
        while proc.poll() is None:
            ctx.check()
            time.sleep(_POLL_SECONDS)
    finally:
        ctx.remove_cancel(interrupt)
        stop(proc)
        reader.join(timeout=5)
    return proc.returncode, list(tail)
