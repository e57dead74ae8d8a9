"""Export pipeline definitions as YAML on stdout (round-trips with import)."""

from __future__ import annotations

from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError

from pipelines import definition
from pipelines.models import Pipeline


class Command(BaseCommand):
    help = "Print pipeline definitions as YAML (all, or the named ones)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("names", nargs="*")

    def handle(self, *args: Any, **options: Any) -> None:
        pipelines = Pipeline.objects.order_by("name")
        if options["names"]:
            pipelines = pipelines.filter(name__in=options["names"])
            missing = set(options["names"]) - set(pipelines.values_list("name", flat=True))
            if missing:
                raise CommandError(f"unknown pipeline(s): {', '.join(sorted(missing))}")
        docs = [p.definition for p in pipelines]
        if len(docs) == 1:
            self.stdout.write(definition.dump_yaml(docs[0]), ending="")
        else:
            self.stdout.write(yaml.safe_dump(docs, sort_keys=False, allow_unicode=True), ending="")
