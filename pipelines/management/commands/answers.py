"""Store the API answers of finished executions now (the worker does it in the background)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pipelines.answers import answers_reset, answers_store


class Command(BaseCommand):
    help = (
        "Store the API answer of every finished execution that has none (the worker's "
        "maintenance does it a slice at a time): after an upgrade with a long history, or "
        "with --reset after TIME_ZONE changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="forget every stored answer first (they were written in another time zone)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["reset"]:
            self.stdout.write(f"forgot {answers_reset()} stored answers")
        started = time.monotonic()
        stored, _ = answers_store(history=True)
        self.stdout.write(f"stored {stored} answers in {time.monotonic() - started:.1f} s")
