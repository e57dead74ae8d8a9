"""Production refuses the secrets this repository publishes (SPEC §10).

The published values are read from ``.env.example`` and ``docker-compose.yml``
here, at test time: an edit of either file that adds or changes a
placeholder fails these tests until the product's list
(``core.known_secrets``) knows it. Start-up is tried for real: ``manage.py
check`` in a subprocess with the environment a deployment would have.
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.checks import Tags, run_checks

from core.known_secrets import KNOWN_SECRETS, is_known_secret, known_secret_problems
from tests.services import need_postgres
from tests.workers import BASE_DIR, run_check

# Variables whose value is a secret, by name (SECRET_KEY, FERNET_KEYS, *_PASSWORD, *_TOKEN).
SECRET_NAME = re.compile(r"SECRET|PASSWORD|_KEY|TOKEN")
# Compose interpolation with a default: ${VAR:-default} or ${VAR-default}.
COMPOSE_DEFAULT = re.compile(r"\$\{(\w+):?-([^}]*)\}")


def env_example() -> dict[str, str]:
    """Every ``NAME=value`` of .env.example, commented-out examples included."""
    values = {}
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            values[match[1]] = match[2].strip().strip("'\"")
    return values


def compose_strings() -> list[tuple[str, str]]:
    """``(key, value)`` for every string value of docker-compose.yml, nested ones included."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif isinstance(node, str):
            found.append((key, node))

    walk(yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text()), "")
    return found


def compose_interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's substitution: the variable from ``env``, else the file's default."""
    return COMPOSE_DEFAULT.sub(lambda m: env.get(m[1]) or m[2], value)


def compose_database_url(env: dict[str, str]) -> str:
    """The DATABASE_URL docker-compose.yml gives the app with ``env`` as its .env."""
    urls = [v for k, v in compose_strings() if k == "DATABASE_URL"]
    assert urls, "docker-compose.yml no longer sets DATABASE_URL: update this test"
    return compose_interpolate(urls[0], env)


def published_secrets() -> set[str]:
    """Every non-empty secret value the two files publish, defaults included."""
    found = {v for k, v in env_example().items() if SECRET_NAME.search(k) and v}
    for key, value in compose_strings():
        for name, default in COMPOSE_DEFAULT.findall(value):
            if SECRET_NAME.search(name) and default:
                found.add(default)
        if SECRET_NAME.search(key) and "${" not in value:
            found.add(value)  # a literal secret in the compose file
        password = urlparse(compose_interpolate(value, {})).password
        if "://" in value and password:
            found.add(unquote(password))
    return found


def strong_env() -> dict[str, str]:
    """Production values nobody published: the baseline each case spoils one of."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FERNET_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": f"postgresql://datadog:{secrets.token_urlsafe(24)}@127.0.0.1:5432/datadog",
    }


# A valid Fernet key, but all zero bytes: typed, not generated.
ZERO_FERNET_KEY = base64.urlsafe_b64encode(bytes(32)).decode()


def test_it_lists_every_secret_published_in_env_example_and_compose() -> None:
    published = published_secrets()
    # The files do publish placeholders; finding none means the parsing broke.
    assert env_example()["SECRET_KEY"] in published
    assert "datadog" in published  # ${POSTGRES_PASSWORD:-datadog}
    missing = {value for value in published if value.lower() not in KNOWN_SECRETS}
    assert not missing, f"add these to core.known_secrets.KNOWN_SECRETS: {sorted(missing)}"


def published_start_cases() -> list[Any]:
    example = env_example()
    return [
        pytest.param(
            {"SECRET_KEY": example["SECRET_KEY"]}, "SECRET_KEY", id="env-example-secret-key"
        ),
        pytest.param(
            {"FERNET_KEYS": example["FERNET_KEYS"]}, "FERNET_KEYS", id="env-example-fernet"
        ),
        pytest.param(
            {"DATABASE_URL": compose_database_url({})}, "DATABASE_URL", id="compose-db-password"
        ),
        pytest.param(
            {"DATABASE_URL": compose_database_url(example)},
            "DATABASE_URL",
            id="env-example-db-password",
        ),
        pytest.param({"FERNET_KEYS": ZERO_FERNET_KEY}, "FERNET_KEYS", id="zero-fernet-key"),
        pytest.param({"SECRET_KEY": "m" * 50}, "SECRET_KEY", id="one-character-secret-key"),
    ]


@pytest.mark.parametrize(("spoiled", "named"), published_start_cases())
def test_it_refuses_to_start_in_production_with_a_published_secret(
    tmp_path: Path, spoiled: dict[str, str], named: str
) -> None:
    result = run_check(tmp_path, **{**strong_env(), **spoiled})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert f"{named}:" in message
    # The message names the variable, never the value it refused.
    for value in spoiled.values():
        refused = urlparse(value).password if "://" in value else value
        if refused:
            assert refused not in message


def test_it_starts_in_production_with_secrets_of_its_own(tmp_path: Path) -> None:
    admin = urlparse(need_postgres())
    # Trust authentication on the test server accepts any password.
    password = secrets.token_urlsafe(24)
    url = f"postgresql://{admin.username}:{password}@{admin.hostname}:{admin.port or 5432}/postgres"
    result = run_check(tmp_path, **{**strong_env(), "DATABASE_URL": url})
    assert result.returncode == 0, result.stderr


def test_it_reports_published_secrets_in_check_deploy(tmp_path: Path) -> None:
    # Embedded mode starts with them (development), but the deploy check names each.
    example = env_example()
    result = run_check(
        tmp_path,
        "--deploy",
        SECRET_KEY=example["SECRET_KEY"],
        FERNET_KEYS=f"{Fernet.generate_key().decode()},{ZERO_FERNET_KEY}",
    )
    assert result.returncode != 0
    assert "(datadog.E001) SECRET_KEY:" in result.stderr
    assert "(datadog.E002) FERNET_KEYS: key 2 " in result.stderr
    assert example["SECRET_KEY"] not in result.stderr


def test_it_passes_the_deploy_check_with_generated_secrets() -> None:
    # The test process runs on keys generated into VAR_DIR (embedded default).
    ids = {message.id for message in run_checks(include_deployment_checks=True)}
    assert not {i for i in ids if i and i.startswith("datadog.")}


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_it_reports_the_compose_database_password_in_check_deploy(settings: Any) -> None:
    password = unquote(urlparse(compose_database_url({})).password or "")
    settings.DATABASES = {
        **settings.DATABASES,
        "default": {**settings.DATABASES["default"], "PASSWORD": password},
    }
    messages = run_checks(include_deployment_checks=True, tags=[Tags.security])
    errors = [m for m in messages if m.id == "datadog.E003"]
    assert len(errors) == 1
    assert errors[0].msg.startswith("DATABASE_URL:") and password not in errors[0].msg


@pytest.mark.parametrize(
    "value", ["datadog", " PASSWORD ", "Change-Me", "please-changeme-now", "django-insecure-abc"]
)
def test_it_knows_published_values_and_placeholders_in_any_case(value: str) -> None:
    assert is_known_secret(value)


def test_it_does_not_know_a_generated_secret() -> None:
    assert not is_known_secret(secrets.token_urlsafe(32))
    assert not is_known_secret("datadog-" + secrets.token_hex(8))  # contains, not equals


def test_it_finds_no_problem_with_generated_secrets_or_no_database_password() -> None:
    strong = {
        "secret_key": secrets.token_urlsafe(50),
        "fernet_keys": [Fernet.generate_key().decode(), Fernet.generate_key().decode()],
    }
    assert known_secret_problems(**strong, database_password=None) == []
    assert known_secret_problems(**strong, database_password="") == []
    # Not a Fernet key at all: the settings' own check names it, not this one.
    assert (
        known_secret_problems(**{**strong, "fernet_keys": ["not-a-key"]}, database_password="")
        == []
    )


def test_it_names_each_refused_variable_and_never_its_value() -> None:
    problems = known_secret_problems(
        secret_key="ab" * 30,
        fernet_keys=[Fernet.generate_key().decode(), ZERO_FERNET_KEY, "replace-me-key"],
        database_password="changeme",
    )
    assert [str(p).split(":")[0] for p in problems] == [
        "SECRET_KEY",
        "FERNET_KEYS",
        "FERNET_KEYS",
        "DATABASE_URL",
    ]
    assert problems[0].message.startswith("has fewer than 5 distinct characters")
    assert "key 2 is a placeholder" in problems[1].message
    assert "key 3 is a placeholder" in problems[2].message
    text = " ".join(str(p) for p in problems)
    for value in ("abab", ZERO_FERNET_KEY, "replace-me-key", "changeme"):
        assert value not in text
