from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        import accounts.checks  # noqa: F401  registers the deploy checks
        from accounts.tokens import connect_auth_signals

        connect_auth_signals()
