"""Task runs carry an ``output`` (SPEC §8 "Task outputs")."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("pipelines", "0002_connection_bindings")]

    operations = [
        migrations.AddField(
            model_name="taskrun",
            name="output",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
