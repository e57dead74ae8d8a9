from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("pipelines", "0005_taskrun_waiting")]

    operations = [
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(fields=["pipeline", "created_at"], name="exec_pipeline_created"),
        ),
    ]
