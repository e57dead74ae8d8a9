"""Task runs gain the ``waiting`` state of sensors and their ``next_check_at`` (SPEC §8 "wait")."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("pipelines", "0004_assets")]

    operations = [
        migrations.AddField(
            model_name="taskrun",
            name="next_check_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="taskrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("success", "Success"),
                    ("failed", "Failed"),
                    ("up_for_retry", "Up For Retry"),
                    ("waiting", "Waiting"),
                    ("skipped", "Skipped"),
                    ("upstream_failed", "Upstream Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="taskrun",
            index=models.Index(fields=["status", "next_check_at"], name="taskrun_status_check"),
        ),
    ]
