# ruff: noqa: F811
"""File connections do not share or nest paths under DATA_ROOT (SPEC §10, issue 10 item 4).

Through the API with bearer tokens, two developers on a real DATA_ROOT:
developer A owns a csv connection on ``team_a`` (with files in it);
developer B tries every spelling of a path in, equal to or around it, a
symlink into it, and other kinds, and gets 400 on ``config.path`` that names
the rule but not A's connection. Refusals and connection tests answer the
same whether the path exists or not.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as metadata

from connectors.models import Connection
from connectors.paths import PATH_OVERLAP, PATH_RESERVED
from pipelines import runner

# The API tests' fixtures: bearer-token clients, and throttle counters of
# this test's own. (Imported fixtures are parameters below, hence F811.)
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

SECRET_NAME = "team_a_private_files"


@pytest.fixture
def root(settings: Any, tmp_path: Path) -> Path:
    settings.DATA_ROOT = tmp_path / "data"
    settings.DATA_ROOT.mkdir()
    return Path(settings.DATA_ROOT)


@pytest.fixture
def team_a(root: Path, developer: Any, api_client_for: Any) -> dict[str, Any]:
    """Developer A's csv connection on ``team_a``, holding a file."""
    (root / "team_a" / "sub").mkdir(parents=True)
    (root / "team_a" / "customers.csv").write_text("id,email\n1,a@example.com\n")
    response = create(api_client_for(developer), SECRET_NAME, "csv", "team_a")
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def b(other_developer: Any, api_client_for: Any) -> Any:
    return api_client_for(other_developer)


def create(client: Any, name: str, kind: str, path: str) -> Any:
    body = {"name": name, "kind": kind, "config": {"path": path}}
    return client.post(url("connections"), body, format="json")


def refused(response: Any) -> str:
    """The message of a 400 on config.path; it never names the other connection."""
    body = assert_error(response, 400, "config.path")
    assert SECRET_NAME not in response.content.decode()
    return next(e["message"] for e in body["errors"] if e["path"] == "config.path")


@pytest.mark.parametrize(
    "path",
    [
        "team_a",
        "team_a/",
        "./team_a",
        "team_a/.",
        "team_a//",
        "team_a/sub",
        "team_a/sub/deeper/still",
        "team_a/missing_dir",
        ".",
    ],
)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_it_refuses_a_directory_equal_to_inside_or_around_another(
    team_a: dict[str, Any], b: Any, kind: str, path: str
) -> None:
    assert refused(create(b, "mine", kind, path)) == PATH_OVERLAP
    assert not Connection.objects.filter(name="mine").exists()


def test_it_refuses_dot_dot_even_when_it_lands_in_place(team_a: dict[str, Any], b: Any) -> None:
    message = refused(create(b, "mine", "csv", "team_a/../team_a"))
    assert "'..' is refused" in message


@pytest.mark.parametrize("link_target", ["team_a", "team_a/sub"])
def test_it_refuses_a_symlink_into_another_connections_directory(
    team_a: dict[str, Any], b: Any, root: Path, link_target: str
) -> None:
    (root / "shortcut").symlink_to(root / link_target, target_is_directory=True)
    assert refused(create(b, "mine", "csv", "shortcut")) == PATH_OVERLAP
    assert refused(create(b, "mine", "csv", "shortcut/inner")) == PATH_OVERLAP


def test_it_refuses_a_sqlite_file_inside_another_connections_directory(
    team_a: dict[str, Any], b: Any
) -> None:
    assert refused(create(b, "mine", "sqlite", "team_a/stolen.sqlite3")) == PATH_OVERLAP
    assert refused(create(b, "mine", "sqlite", "team_a/customers.csv")) == PATH_OVERLAP


def test_it_refuses_a_directory_around_or_beside_a_sqlite_file(
    root: Path,
    developer: Any,
    api_client_for: Any,
    b: Any,
) -> None:
    owner = api_client_for(developer)
    assert create(owner, "lite", "sqlite", "dbs/shop.sqlite3").status_code == 201
    assert refused(create(b, "mine", "csv", "dbs")) == PATH_OVERLAP
    assert refused(create(b, "mine", "sqlite", "dbs/shop.sqlite3")) == PATH_OVERLAP
    # SQLite's own side files: a second database there would corrupt the first.
    assert refused(create(b, "mine", "sqlite", "dbs/shop.sqlite3-wal")) == PATH_OVERLAP
    assert refused(create(b, "mine", "csv", "dbs/shop.sqlite3-journal")) == PATH_OVERLAP
    assert create(b, "mine", "sqlite", "dbs/other.sqlite3").status_code == 201


def test_it_lets_another_developer_use_a_path_of_their_own(
    team_a: dict[str, Any], b: Any, root: Path
) -> None:
    for name, kind, path in [
        ("b_csv", "csv", "team_b"),
        ("b_jsonl", "jsonl", "team_a_b"),  # a common prefix is not nesting
        ("b_lite", "sqlite", "team_b.sqlite3"),
    ]:
        response = create(b, name, kind, path)
        assert response.status_code == 201, response.content


def test_it_refuses_moving_a_connection_onto_another_ones_path(
    team_a: dict[str, Any], b: Any
) -> None:
    mine = create(b, "mine", "csv", "team_b").json()
    for change in (
        {"config": {"path": "team_a/sub"}},
        {"kind": "sqlite", "config": {"path": "team_a/x.db"}},
    ):
        refused(b.patch(url(f"connections/{mine['id']}"), change, format="json"))
    assert Connection.objects.get(pk=mine["id"]).config == {"path": "team_b"}


def test_it_lets_a_connection_keep_or_narrow_its_own_path(
    team_a: dict[str, Any],
    developer: Any,
    api_client_for: Any,
) -> None:
    owner = api_client_for(developer)
    target = url(f"connections/{team_a['id']}")
    kept = owner.patch(target, {"description": "same path"}, format="json")
    assert kept.status_code == 200, kept.content
    narrowed = owner.patch(target, {"config": {"path": "team_a/sub"}}, format="json")
    assert narrowed.status_code == 200, narrowed.content


# ----------------------------------------------------------------- oracles


def test_it_answers_a_refused_path_the_same_whether_it_exists_or_not(
    team_a: dict[str, Any], b: Any, root: Path
) -> None:
    for kind in ("csv", "sqlite"):
        existing = create(b, "mine", kind, "team_a/customers.csv")
        missing = create(b, "mine", kind, "team_a/no_such_file.csv")
        assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())
        existing = create(b, "mine", kind, "team_a/sub")
        missing = create(b, "mine", kind, "team_a/no_such_dir")
        assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())
    assert sorted(p.name for p in (root / "team_a").iterdir()) == ["customers.csv", "sub"]


def test_it_tests_an_overlapping_legacy_connection_without_probing_its_path(
    team_a: dict[str, Any], other_developer: Any, b: Any, root: Path
) -> None:
    # Saved before the rule existed (straight to the table, past the service).
    answers = []
    for name, path in [("old_existing", "team_a/sub"), ("old_missing", "team_a/gone")]:
        legacy = Connection(name=name, kind="csv", created_by=other_developer)
        legacy.set_config({"path": path}, keep_secrets=False)
        legacy.save()
        response = b.post(url(f"connections/{legacy.pk}/test"))
        assert response.status_code == 200, response.content
        answers.append(response.json())
    assert answers[0] == answers[1]
    assert answers[0]["ok"] is False and PATH_OVERLAP in answers[0]["error"]
    assert SECRET_NAME not in str(answers)
    assert not (root / "team_a" / "gone").exists()


# ------------------------------------------------------ the platform's own files


def test_it_refuses_the_metadata_database_when_data_root_holds_it(
    settings: Any, tmp_path: Path, developer: Any, api_client_for: Any
) -> None:
    # A SQLite connection on the metadata file itself would need no ATTACH.
    if metadata.vendor != "sqlite":
        pytest.skip("the metadata database is not an embedded SQLite file")
    database = Path(metadata.settings_dict["NAME"]).resolve()
    settings.DATA_ROOT = database.parent
    settings.VAR_DIR = tmp_path / "var"  # only the database file is at stake here
    dev = api_client_for(developer)
    for kind, path in [
        ("sqlite", database.name),
        ("sqlite", f"{database.name}-wal"),
        ("csv", "."),
    ]:
        assert refused(create(dev, "meta", kind, path)) == PATH_RESERVED
    assert not Connection.objects.filter(name="meta").exists()
    beside = create(dev, "beside", "sqlite", f"not_{database.name}")
    assert beside.status_code == 201, beside.content


def test_it_refuses_var_dir_when_data_root_holds_it(
    settings: Any, tmp_path: Path, developer: Any, api_client_for: Any
) -> None:
    settings.DATA_ROOT = tmp_path / "data"
    settings.VAR_DIR = tmp_path / "data" / "var"
    settings.VAR_DIR.mkdir(parents=True)
    (settings.VAR_DIR / "fernet_key").write_text("not a real key")
    dev = api_client_for(developer)
    for kind, path in [("csv", "var"), ("jsonl", "var/cache"), ("sqlite", "var/fernet_key")]:
        assert refused(create(dev, "keys", kind, path)) == PATH_RESERVED
    assert create(dev, "files", "csv", "files").status_code == 201


def test_it_lets_paths_under_the_default_data_root_inside_var_dir(
    settings: Any, tmp_path: Path, developer: Any, api_client_for: Any
) -> None:
    settings.VAR_DIR = tmp_path / "var"
    settings.DATA_ROOT = tmp_path / "var" / "data"
    settings.DATA_ROOT.mkdir(parents=True)
    response = create(api_client_for(developer), "everything", "csv", ".")
    assert response.status_code == 201, response.content


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_run_on_an_overlapping_legacy_connection_before_reading(
    team_a: dict[str, Any], other_developer: Any, b: Any, root: Path, no_broker: list[Any]
) -> None:
    legacy = Connection(name="old", kind="csv", created_by=other_developer)
    legacy.set_config({"path": "team_a"}, keep_secrets=False)
    legacy.save()  # saved before the rule existed, past the service
    assert create(b, "mine", "sqlite", "team_b.sqlite3").status_code == 201
    copy = {
        "name": "steal",
        "type": "copy",
        "source": {"connection": "old", "table": "customers.csv"},
        "destination": {"connection": "mine", "table": "stolen", "mode": "replace"},
    }
    pipeline = b.post(url("pipelines"), {"name": "p", "tasks": [copy]}, format="json")
    assert pipeline.status_code == 201, pipeline.content
    started = b.post(url(f"pipelines/{pipeline.json()['pipeline_id']}/execute"), {}, format="json")
    assert started.status_code == 200, started.content

    assert runner.run_task(str(no_broker[0])) == "failed"

    shown = b.get(url(f"executions/{started.json()['execution_id']}")).json()
    assert PATH_OVERLAP in shown["tasks"][0]["error"]
    assert SECRET_NAME not in shown["tasks"][0]["error"]
    with sqlite3.connect(root / "team_b.sqlite3") as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'stolen'").fetchall() == []
