from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pipelines"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from pipelines.tasks import on_worker_spawn

        post_spawn.connect(on_worker_spawn, dispatch_uid="datadog-maintain-kick")
        import datadog_web.metrics  # noqa: F401  connects metrics, alert and log-id receivers
