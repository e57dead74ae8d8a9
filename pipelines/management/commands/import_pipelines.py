"""Import pipelines from YAML/JSON files: all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from django.db import transaction

from accounts.commands import AuditedCommand
from core.errors import ServiceError
from pipelines import definition
from pipelines.models import Pipeline
from pipelines.services import pipeline_create, pipeline_update

SUFFIXES = {".yaml", ".yml", ".json"}


def _files(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.suffix.lower() in SUFFIXES)
    if target.is_file():
        return [target]
    raise CommandError(f"{target}: no such file or directory")


class Command(AuditedCommand):
    help = "Import pipelines (one or a list per file) from FILE or DIR; creates or updates by name."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+")

    def handle(self, *args: Any, **options: Any) -> None:
        problems: list[str] = []
        created = updated = 0
        try:
            with transaction.atomic():
                for path in [f for p in options["paths"] for f in _files(Path(p))]:
                    try:
                        data = definition.parse_text(path.read_text(), None)
                    except definition.DefinitionError as exc:
                        problems += [f"{path}: {p}" for p in exc.problems]
                        continue
                    items = data if isinstance(data, list) else [data]
                    for index, item in enumerate(items):
                        where = f"{path}[{index}]" if isinstance(data, list) else str(path)
                        try:
                            name = item.get("name") if isinstance(item, dict) else None
                            existing = Pipeline.objects.filter(name=name).first() if name else None
                            if existing:
                                pipeline_update(pipeline=existing, data=item)
                                updated += 1
                            else:
                                pipeline_create(data=item)
                                created += 1
                        except ServiceError as exc:
                            problems += [
                                f"{where}: {e['path']}: {e['message']}" for e in exc.errors
                            ] or [f"{where}: {exc.detail}"]
                if problems:
                    raise CommandError("nothing imported:\n" + "\n".join(problems))
        except CommandError:
            raise
        self.stdout.write(f"imported: {created} created, {updated} updated")
