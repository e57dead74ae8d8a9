"""The compose reader (tests/deploy/compose.py): interpolation, env files, and broken copies.

The broken copies are the point: a compose file whose variable, path or
command no longer matches the code must fail here, before anyone runs
``docker compose up``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.compose import (
    Compose,
    ComposeError,
    interpolate,
    names_read_by,
    parse_env_file,
    read_dockerfile,
    unread_variables,
)
from tests.deploy.stack import APP_SERVICES, BASE, PRODUCT_CODE, env_from_example


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${SET}", "yes"),
        ("$SET/x", "yes/x"),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${SET:-dflt}", "yes"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET}", ""),
        ("$$SET", "$SET"),
        ("a${UNSET:-${SET}}b", "ayesb"),
        ("postgresql://u:${PW:-datadog}@db/x", "postgresql://u:s3cret@db/x"),
        ("${ALLOWED:-localhost,127.0.0.1},web", "localhost,127.0.0.1,web"),
    ],
)
def test_interpolation_follows_compose(text: str, expected: str) -> None:
    variables = {"SET": "yes", "EMPTY": "", "PW": "s3cret"}
    assert interpolate(text, variables) == expected


@pytest.mark.parametrize("text", ["${UNSET:?set it}", "${EMPTY:?set it}", "${UNSET?set it}"])
def test_a_required_variable_without_value_is_an_error(text: str) -> None:
    with pytest.raises(ComposeError, match="set it"):
        interpolate(text, {"EMPTY": ""})


@pytest.mark.parametrize("text", ["${}", "${1X}", "cost: 5$", "${A B}"])
def test_bad_interpolation_syntax_is_an_error(text: str) -> None:
    with pytest.raises(ComposeError, match="invalid interpolation"):
        interpolate(text, {})


def test_env_file_syntax() -> None:
    text = (
        "# comment\n\nA=1\nexport B=two words\nC='single # kept'\n"
        'D="dq \\"x\\""\nE=value # inline comment\nF=\nG=a=b\n'
    )
    assert parse_env_file(text) == {
        "A": "1",
        "B": "two words",
        "C": "single # kept",
        "D": 'dq "x"',
        "E": "value",
        "F": "",
        "G": "a=b",
    }
    with pytest.raises(ComposeError, match="line 1"):
        parse_env_file("not a variable\n")


def test_dockerfile_final_stage() -> None:
    image = read_dockerfile(BASE / "Dockerfile")
    assert str(image.workdir) == "/app"
    assert image.env["DATADOG_VAR_DIR"] == "/var/lib/datadog"


def test_the_app_services_get_env_file_overridden_by_environment(tmp_path: Path) -> None:
    compose = Compose(BASE / "docker-compose.yml", env_from_example(tmp_path))
    for name in APP_SERVICES:
        env = compose.service(name).environment()
        # env_file .env, then the anchor's environment (merge key) over it.
        assert env["SECRET_KEY"] == compose.variables["SECRET_KEY"]
        assert env["DATA_ROOT"] == "/data"
        password = compose.variables["POSTGRES_PASSWORD"]
        assert env["DATABASE_URL"] == f"postgresql://datadog:{password}@postgres:5432/datadog"
        assert env["ALLOWED_HOSTS"].endswith(",web")
        assert env["SECURE_SSL_REDIRECT"] == "false"


def test_the_real_files_agree_with_the_code(tmp_path: Path) -> None:
    compose = Compose(BASE / "docker-compose.yml", env_from_example(tmp_path))
    read = names_read_by(PRODUCT_CODE)
    for name in APP_SERVICES:
        service = compose.service(name)
        assert unread_variables(service.environment(), read, compose) == []
        command = compose.host_command(service)
        assert Path(command[0]).exists()
        # A health check that runs a program of the image names a real one too.
        check = (service.config.get("healthcheck") or {}).get("test") or []
        if check[:2] == ["CMD", "python"]:
            compose.host_command(service, command=check[1:])


def _broken_copy(tmp_path: Path, old: str, new: str) -> Compose:
    """docker-compose.yml with one edit, next to the real Dockerfile, deploy/ and manage.py."""
    project = tmp_path / "project"
    project.mkdir(parents=True)
    text = (BASE / "docker-compose.yml").read_text()
    assert old in text, old
    (project / "docker-compose.yml").write_text(text.replace(old, new, 1))
    for name in ("Dockerfile", "manage.py"):
        shutil.copy(BASE / name, project / name)
    shutil.copytree(BASE / "deploy", project / "deploy")
    return Compose(project / "docker-compose.yml", env_from_example(tmp_path))


def test_a_renamed_variable_fails(tmp_path: Path) -> None:
    compose = _broken_copy(tmp_path, "    DATABASE_URL:", "    DB_URL:")
    env = compose.service("web").environment()
    assert unread_variables(env, names_read_by(PRODUCT_CODE), compose) == ["DB_URL"]


def test_a_misspelt_env_example_variable_fails(tmp_path: Path) -> None:
    env_file = env_from_example(tmp_path)
    env_file.write_text(env_file.read_text().replace("SECURE_COOKIES=", "SECURE_COOKIE="))
    compose = Compose(BASE / "docker-compose.yml", env_file)
    env = compose.service("worker").environment()
    assert unread_variables(env, names_read_by(PRODUCT_CODE), compose) == ["SECURE_COOKIE"]


def test_a_moved_path_fails(tmp_path: Path) -> None:
    compose = _broken_copy(tmp_path, '/app/deploy/gunicorn.conf.py"]', '/app/gunicorn.conf.py"]')
    with pytest.raises(ComposeError, match="/app/gunicorn.conf.py maps to .* not exist"):
        compose.host_command(compose.service("web"))
    # A bind mount whose source moved fails the same way.
    compose = _broken_copy(tmp_path / "2", "./deploy/gunicorn.conf.py:", "./deploy/gunicorn.py:")
    with pytest.raises(ComposeError, match="not exist"):
        compose.host_command(compose.service("web"))


def test_a_wrong_command_fails(tmp_path: Path) -> None:
    compose = _broken_copy(tmp_path, '"manage.py", "worker"]', '"manage.py", "qworker"]')
    with pytest.raises(ComposeError, match="no command \\['qworker'\\]"):
        compose.host_command(compose.service("worker"))
    compose = _broken_copy(tmp_path / "2", '["gunicorn",', '["uwsgi",')
    with pytest.raises(ComposeError, match="no program 'uwsgi'"):
        compose.host_command(compose.service("web"))


def test_names_read_by_sees_every_form(tmp_path: Path) -> None:
    code = tmp_path / "code.py"
    code.write_text(
        'import os\nA = env_str("ONE")\nB = os.environ.get("TWO", "x")\n'
        'C = ("THREE", "FOUR")\nD = "lower"\n'
    )
    assert {"ONE", "TWO", "THREE", "FOUR"} <= names_read_by([code])
    assert "lower" not in names_read_by([code])
