from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pipelines"

    def ready(self) -> None:
        # Imported here because these modules import models, which Django
        # loads only after the app configs (its documented pattern, not a cycle).
        from django_q.signals import post_spawn

        from connectors.signals import connection_renamed
        from pipelines.services.pipeline import pipelines_follow_connection_rename
        from pipelines.tasks import on_worker_spawn

        post_spawn.connect(on_worker_spawn, dispatch_uid="datadog-maintain-kick")
        connection_renamed.connect(
            pipelines_follow_connection_rename, dispatch_uid="pipelines-follow-rename"
        )
