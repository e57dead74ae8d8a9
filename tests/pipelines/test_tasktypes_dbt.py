"""pipelines.tasktypes.dbt when a definition is saved: keys, confinement, dbt missing.

Also the profile and environment dbt gets, and the projects root kept from
file connections. The runs are in test_tasktypes_dbt_runs.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.paths import PATH_RESERVED
from pipelines.definition import load
from pipelines.tasktypes import dbt
from tests.connectors.test_file_isolation import create, refused
from tests.pipelines.definition_examples import pipeline, problems

PROJECTS = Path(__file__).resolve().parent.parent / "dbt_projects"
SHOP = PROJECTS / "shop"
# Every node of the shop project that `select: "+stg_orders"` runs, and how it ends.
STG_NODES = {
    "seed.shop.raw_orders": "success",
    "model.shop.stg_orders": "success",
    "test.shop.unique_stg_orders_id.beb6e97f2f": "pass",
    "test.shop.not_null_stg_orders_id.8cf5724805": "pass",
}
FAILING_TEST = "test.shop.total_under_100_fails_on_purpose"


def dbt_task(name: str = "marts", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "dbt",
        "connection": "dwh",
        "project": "shop",
        "command": "build",
        **extra,
    }


@pytest.fixture
def root(settings: Any) -> Path:
    settings.DBT_PROJECTS_ROOT = PROJECTS
    return PROJECTS


# ---------------------------------------------------------------------------
# Checks at save
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("root")
def test_it_accepts_a_dbt_task_with_every_key() -> None:
    task = dbt_task(
        select="tag:nightly +stg_orders",
        vars={"day": {"param": "logical_date"}, "min_amount": 25, "regions": ["eu", "us"]},
    )
    (normalized,) = load(pipeline(task))["tasks"]
    assert {key: normalized[key] for key in task} == task


@pytest.mark.usefixtures("root")
def test_it_rejects_bad_dbt_keys() -> None:
    task = dbt_task(
        command="compile",
        select="stg_orders --full-refresh",
        vars={"day": {"param": "nope"}, "n": {"x": 1}},
    )
    del task["connection"]
    assert problems(pipeline(task)) == [
        "tasks[0].connection: missing required key 'connection'",
        "tasks[0].command: unknown dbt command 'compile' (expected one of: build, run, seed,"
        " snapshot, test)",
        "tasks[0].select: '--full-refresh': selectors do not start with '-'",
        "tasks[0].vars.day.param: unknown parameter 'nope'",
        "tasks[0].vars.n.x: unknown key 'x' (expected one of: param)",
        "tasks[0].vars.n.param: missing required key 'param'",
    ]


@pytest.mark.usefixtures("root")
@pytest.mark.parametrize(
    ("project", "message"),
    [
        ("/etc", "project '/etc': absolute paths are refused"),
        ("../dbt_projects/shop", "project '../dbt_projects/shop': '..' is refused"),
        ("shop/../..", "project 'shop/../..': '..' is refused"),
        ("~root", "project '~root': absolute paths are refused"),
        (".", "project '.': name a folder under DBT_PROJECTS_ROOT"),
    ],
)
def test_it_refuses_projects_outside_the_root(project: str, message: str) -> None:
    assert problems(pipeline(dbt_task(project=project))) == [f"tasks[0].project: {message}"]


def test_it_refuses_a_symlink_out_of_the_root(settings: Any, tmp_path: Path) -> None:
    settings.DBT_PROJECTS_ROOT = tmp_path / "root"
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "shop").symlink_to(SHOP)  # outside this root
    assert problems(pipeline(dbt_task())) == [
        "tasks[0].project: project 'shop' resolves outside DBT_PROJECTS_ROOT; refused"
    ]


@pytest.mark.usefixtures("root")
def test_it_says_how_to_install_dbt_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("dbt", "dbt.adapters", "dbt.adapters.postgres"):
        monkeypatch.setitem(sys.modules, module, None)  # what an import finds when absent
    assert problems(pipeline(dbt_task())) == [
        "tasks[0].type: dbt is not installed on this host: install the extra with"
        " pip install '.[dbt]'"
    ]


def test_its_profile_holds_no_password_and_its_environment_pins_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-the-worker")
    monkeypatch.setenv("SECRET_KEY", "the-platforms-own")
    kwargs = {
        "host": "db.example.com,db.example.com",
        "hostaddr": "10.0.0.5,10.0.0.6",
        "port": 5433,
        "dbname": "dwh",
        "user": "etl",
        "password": "s3cret-Pa55",
        "connect_timeout": 10,
        "options": "-c TimeZone=UTC",
        "application_name": "datadog-platform",
        "require_auth": "!password",
        "sslmode": "verify-full",
    }
    profile = dbt.profile(kwargs)
    assert "s3cret-Pa55" not in json.dumps(profile)
    output = profile["datadog"]["outputs"]["task"]
    assert output["host"] == "db.example.com,db.example.com"
    assert output["sslmode"] == "verify-full"
    env = dbt.environment(kwargs, tmp_path)
    assert env["PGHOSTADDR"] == "10.0.0.5,10.0.0.6"
    assert env["PGREQUIREAUTH"] == "!password"
    assert env["DBT_ENV_SECRET_DATADOG_PASSWORD"] == "s3cret-Pa55"
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    # The worker's secrets and libpq settings are not dbt's to read (env_var in Jinja).
    assert "PGPASSWORD" not in env and "SECRET_KEY" not in env
    assert env["PATH"] == os.environ["PATH"]


def test_no_file_connection_may_write_into_the_projects_root(
    settings: Any, tmp_path: Path, developer: Any, api_client_for: Any
) -> None:
    """A copy writing dbt_project.yml or a model there would run its Jinja in a worker."""
    settings.DATA_ROOT = tmp_path
    settings.DBT_PROJECTS_ROOT = tmp_path / "dbt"
    shutil.copytree(SHOP, tmp_path / "dbt" / "shop")
    dev = api_client_for(developer)
    for kind, path in [("csv", "dbt/shop"), ("jsonl", "dbt"), ("sqlite", "dbt/x.db"), ("csv", ".")]:
        assert refused(create(dev, "into_dbt", kind, path)) == PATH_RESERVED
    assert create(dev, "beside", "csv", "files").status_code == 201


def test_its_output_keeps_within_a_task_outputs_size() -> None:
    """A large project's passed nodes give way to the others, counted."""
    results = {
        "results": [
            {"unique_id": f"model.big.model_number_{i:05d}", "status": "success"}
            for i in range(3000)
        ]
        + [{"unique_id": "model.big.late", "status": "warn"}]
    }
    out = dbt.summary(results)
    assert out == {
        "nodes": {"model.big.late": "warn"},
        "passed": 3001,
        "failed": 0,
        "skipped": 0,
        "nodes_omitted": 3000,
    }
    small = dbt.summary({"results": results["results"][:10]})
    assert len(small["nodes"]) == 10 and "nodes_omitted" not in small
