"""Versions bind their connections by id (SPEC §9 "Connections by identity").

Existing versions are bound to the connections their definitions name today;
a name with no connection any more is bound to nothing, so a run of that
version fails naming it instead of picking up whatever takes the name later.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def _names(definition: Any) -> set[str]:
    # A frozen copy of pipelines.definition.connection_refs: a migration must
    # keep meaning what it meant when it was written.
    names: set[str] = set()
    for task in (definition or {}).get("tasks") or []:
        if not isinstance(task, dict):
            continue
        if isinstance(task.get("connection"), str):
            names.add(task["connection"])
        for value in task.values():
            if isinstance(value, dict) and isinstance(value.get("connection"), str):
                names.add(value["connection"])
    return names


def bind_existing_versions(apps: Any, schema_editor: Any) -> None:
    Connection = apps.get_model("connectors", "Connection")
    PipelineVersion = apps.get_model("pipelines", "PipelineVersion")
    ConnectionBinding = apps.get_model("pipelines", "ConnectionBinding")
    ids = dict(Connection.objects.values_list("name", "id"))
    batch = []
    for version_id, definition in PipelineVersion.objects.values_list(
        "id", "definition"
    ).iterator():
        for name in sorted(_names(definition)):
            batch.append(
                ConnectionBinding(version_id=version_id, name=name, connection_id=ids.get(name))
            )
        if len(batch) >= 1000:
            ConnectionBinding.objects.bulk_create(batch)
            batch = []
    ConnectionBinding.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0001_initial"),
        ("pipelines", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="ConnectionBinding",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                (
                    "connection",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="pipeline_bindings",
                        to="connectors.connection",
                    ),
                ),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="bindings",
                        to="pipelines.pipelineversion",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("version", "name"), name="uniq_binding_name")
                ],
            },
        ),
        migrations.RunPython(bind_existing_versions, migrations.RunPython.noop),
    ]
