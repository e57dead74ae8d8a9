"""Run a pipeline now; with --wait, follow it with a progress bar."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import CommandError

from accounts.commands import AuditedCommand
from core.errors import ServiceError
from pipelines.models import EXECUTION_FINISHED, Execution, ExecutionStatus, Pipeline, Trigger
from pipelines.services import execution_create


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v``; v is read as JSON when it parses (numbers, booleans), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--param {text!r}: expected k=v")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


class Command(AuditedCommand):
    help = "Run a pipeline now. Exit code 1 when --wait and the run does not succeed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--param", action="append", default=[], metavar="K=V")
        parser.add_argument("--wait", action="store_true", help="follow until the run finishes")
        parser.add_argument("--timeout", type=float, default=0, help="give up waiting after N s")

    def handle(self, *args: Any, **options: Any) -> None:
        pipeline = Pipeline.objects.filter(name=options["name"]).first()
        if pipeline is None:
            raise CommandError(f"unknown pipeline {options['name']!r}")
        params = dict(parse_param(p) for p in options["param"])
        try:
            execution = execution_create(
                pipeline=pipeline, trigger=Trigger.MANUAL, parameters=params
            )
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"execution {execution.pk} {execution.status}")
        if not options["wait"]:
            return
        final = self._follow(execution, options["timeout"])
        if final != ExecutionStatus.SUCCESS:
            raise CommandError(f"execution {execution.pk} ended {final}")

    def _follow(self, execution: Execution, timeout: float) -> str:
        started = time.monotonic()
        tty = sys.stdout.isatty()
        last = ""
        while True:
            execution.refresh_from_db()
            tasks = list(execution.tasks.order_by("task_name").values_list("task_name", "status"))
            done = sum(
                1
                for _, s in tasks
                if s in {"success", "failed", "skipped", "upstream_failed", "cancelled"}
            )
            width = 30
            filled = int(width * done / max(len(tasks), 1))
            bar = "#" * filled + "-" * (width - filled)
            states = " ".join(f"{n}={s}" for n, s in tasks)
            line = f"[{bar}] {done}/{len(tasks)} {execution.status}  {states}"
            if tty:
                self.stdout.write("\r" + line[:200], ending="")
            elif line != last:
                self.stdout.write(line)
            last = line
            if execution.status in EXECUTION_FINISHED:
                if tty:
                    self.stdout.write("")
                for name, status in tasks:
                    if status == "failed":
                        error = execution.tasks.get(task_name=name).error
                        self.stderr.write(f"{name}: {error}")
                return execution.status
            if timeout and time.monotonic() - started > timeout:
                raise CommandError(f"still {execution.status} after {timeout:g}s")
            time.sleep(0.5)
