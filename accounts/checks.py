"""System checks for ``manage.py check --deploy`` (SPEC §10).

Production already refuses published secrets at start (datadog_web.settings);
the deploy check reports them in every mode, so ``check --deploy`` run on an
embedded or staging configuration before going live names them too.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from core.known_secrets import known_secret_problems

# One id per variable, so a deployment can tell them apart in CI output.
CHECK_IDS = {
    "SECRET_KEY": "datadog.E001",  # nosec B105 - a check id, not a secret
    "FERNET_KEYS": "datadog.E002",
    "DATABASE_URL": "datadog.E003",
}


@register(Tags.security, deploy=True)
def published_secrets_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """An error per published or hand-typed secret in the running settings."""
    problems = known_secret_problems(
        secret_key=str(settings.SECRET_KEY),
        fernet_keys=settings.FERNET_KEYS,
        database_password=settings.DATABASES["default"].get("PASSWORD"),
    )
    return [Error(str(problem), id=CHECK_IDS[problem.variable]) for problem in problems]
