"""AuditEvent.actor_kind: a command or the platform told apart from a user."""

from typing import Any

from django.db import migrations, models


def kinds_fill(apps: Any, schema_editor: Any) -> None:
    # Before this field the kind was only implied: a failed login names the
    # typed user name with no user, an event with neither was the platform's.
    # (No command wrote a name before it either.)
    event = apps.get_model("accounts", "AuditEvent")
    event.objects.filter(actor__isnull=True, action="login_failed").update(actor_kind="anonymous")
    event.objects.filter(actor__isnull=True, actor_name="").exclude(action="login_failed").update(
        actor_kind="system"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="actor_kind",
            field=models.CharField(
                choices=[
                    ("user", "user"),
                    ("cli", "command line"),
                    ("anonymous", "anonymous"),
                    ("system", "system"),
                ],
                db_index=True,
                default="user",
                max_length=16,
            ),
        ),
        migrations.RunPython(kinds_fill, migrations.RunPython.noop),
    ]
