"""Secrets that production refuses because anyone can read them (SPEC §10).

``.env.example`` and ``docker-compose.yml`` publish placeholder values (the
example ``SECRET_KEY``, the compose file's default database password). A
deployment that keeps one of them runs with a key or password every reader
of this repository knows, so production (``DATABASE_URL`` set) refuses to
start with one, and ``manage.py check --deploy`` reports them in any mode.

The product cannot read those files at run time (a container has neither),
so the published values are listed here, in one place;
``tests/core/test_known_secrets.py`` parses both files and fails when one of
their values is missing from this list.

Imports nothing from Django or this project: settings import it before
Django is set up.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

# Exact values published in .env.example and docker-compose.yml (and the
# generic ones people type when a file asks for a secret). Compared
# case-insensitively.
KNOWN_SECRETS = frozenset(
    {
        # .env.example
        "change-me-to-50-random-characters-at-least-32-bytes-long",  # SECRET_KEY
        "change-me",  # POSTGRES_PASSWORD, GRAFANA_ADMIN_PASSWORD
        # docker-compose.yml: ${POSTGRES_PASSWORD:-datadog}
        "datadog",
        # Generic placeholders.
        "changeme",
        "password",
        "secret",
        "postgres",
    }
)

# A value containing one of these is a placeholder someone forgot to replace,
# whatever surrounds it ("change-me-please-…"); "django-insecure-" starts the
# key `django-admin startproject` writes into a settings file.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "replace-me", "django-insecure-")

# Keys are meant to be random: a SECRET_KEY with fewer distinct characters
# (Django's own deploy check uses the same bound) or a Fernet key whose 32
# bytes take fewer distinct values ("AAAA…=" is a valid, all-zero key) was
# typed, not generated. Random keys are far above both bounds.
MIN_SECRET_KEY_CHARACTERS = 5
MIN_FERNET_KEY_BYTES = 8


@dataclass(frozen=True)
class SecretProblem:
    """One refused value: the variable to fix and why, never the value."""

    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


def is_known_secret(value: str) -> bool:
    """Whether ``value`` is a published placeholder or known default."""
    lowered = value.strip().lower()
    return lowered in KNOWN_SECRETS or any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def _fernet_key_is_weak(key: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError):
        return False  # not a Fernet key at all: the settings' own check names it
    return len(set(raw)) < MIN_FERNET_KEY_BYTES


def known_secret_problems(
    *, secret_key: str, fernet_keys: Iterable[str], database_password: str | None
) -> list[SecretProblem]:
    """The published or typed-by-hand secrets among the given values (empty when all are fine).

    ``database_password`` is the password of ``DATABASE_URL`` (None or empty
    when it has none: trust or certificate authentication is not a default).
    """
    problems = []
    if is_known_secret(secret_key):
        problems.append(
            SecretProblem("SECRET_KEY", "is a published placeholder; generate a random key")
        )
    elif len(set(secret_key)) < MIN_SECRET_KEY_CHARACTERS:
        problems.append(
            SecretProblem(
                "SECRET_KEY",
                f"has fewer than {MIN_SECRET_KEY_CHARACTERS} distinct characters; "
                "generate a random key",
            )
        )
    for position, key in enumerate(fernet_keys, start=1):
        if is_known_secret(key) or _fernet_key_is_weak(key):
            problems.append(
                SecretProblem(
                    "FERNET_KEYS",
                    f"key {position} is a placeholder, not a random key; generate one with "
                    "Fernet.generate_key()",
                )
            )
    if database_password and is_known_secret(database_password):
        problems.append(
            SecretProblem(
                "DATABASE_URL",
                "the database password is a published default (POSTGRES_PASSWORD of "
                ".env.example or docker-compose.yml); set POSTGRES_PASSWORD (or the password "
                "in DATABASE_URL) to a secret of your own",
            )
        )
    return problems
