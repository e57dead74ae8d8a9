from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"

    def ready(self) -> None:
        # Here, not in the engine: the engine sends its signals and knows
        # nothing of who listens. ready() runs in every process (web, worker,
        # command), so the receivers are connected everywhere. Imported here
        # because ops.metrics imports models, which Django loads only after
        # this module (Django's documented pattern, not a cycle dodge).
        from ops import checks  # noqa: F401 - registers the system checks
        from ops.metrics import connect_signals

        connect_signals()
