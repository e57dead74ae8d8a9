"""Settings (``datadog_web.settings``): configuration from the environment fails loudly,
naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers import run_check


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DATABASE_URL": "mongodb://x/y"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"FERNET_KEYS": "not-a-key"}, "FERNET_KEYS"),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}, "SECRET_KEY"),
        ({"WORKERS": "zero"}, "WORKERS"),
    ],
)
def test_it_refuses_bad_values_naming_the_variable(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = run_check(tmp_path, **env)
    assert result.returncode != 0
    assert named in result.stderr


def test_it_generates_and_keeps_a_local_secret_key_when_embedded(tmp_path: Path) -> None:
    assert run_check(tmp_path).returncode == 0
    key_file = tmp_path / "var" / "secret_key"
    first = key_file.read_text()
    assert len(first) >= 32
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert run_check(tmp_path).returncode == 0
    assert key_file.read_text() == first


def test_it_defaults_to_debug_off() -> None:
    from django.conf import settings

    assert settings.DEBUG is False
