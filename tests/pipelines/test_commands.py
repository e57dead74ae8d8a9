"""Management commands: bootstrap, import/export, demo, run_pipeline, backfill, reap."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError

from pipelines.models import Execution, Pipeline, PipelineVersion


def run(*args: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_bootstraps_idempotently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATADOG_ADMIN_USER", "boss")
    monkeypatch.setenv("DATADOG_ADMIN_PASSWORD", "a-strong-password-1")
    first = run("bootstrap", "--noinput")
    second = run("bootstrap", "--noinput")
    assert "created" in first and "exists; unchanged" in second
    assert set(Group.objects.values_list("name", flat=True)) >= {
        "admin",
        "developer",
        "operator",
        "viewer",
    }
    boss = User.objects.get(username="boss")
    assert boss.is_superuser and boss.check_password("a-strong-password-1")
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_it_prints_a_generated_admin_password_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATADOG_ADMIN_USER", "root2")
    monkeypatch.delenv("DATADOG_ADMIN_PASSWORD", raising=False)
    out = run("bootstrap", "--noinput")
    password = out.split("password: ")[1].split()[0]
    assert User.objects.get(username="root2").check_password(password)
    assert "password:" not in run("bootstrap", "--noinput")


@pytest.mark.django_db
def test_it_round_trips_import_and_export(make_pipeline: Any, tmp_path: Path) -> None:
    make_pipeline("alpha", description="first")
    make_pipeline("beta", schedule="0 2 * * *")
    exported = run("export_pipelines")
    path = tmp_path / "all.yaml"
    path.write_text(exported)
    before = {p.name: p.definition for p in Pipeline.objects.all()}
    out = run("import_pipelines", str(path))
    assert "0 created, 2 updated" in out
    assert {p.name: p.definition for p in Pipeline.objects.all()} == before
    assert PipelineVersion.objects.count() == 2  # identical definitions: no new version
    single = yaml.safe_load(run("export_pipelines", "alpha"))
    assert single["name"] == "alpha" and single["description"] == "first"


@pytest.mark.django_db
def test_it_imports_all_or_nothing_with_file_and_path(make_pipeline: Any, tmp_path: Path) -> None:
    make_pipeline("seed")
    good = tmp_path / "a_good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "name": "fresh",
                "tasks": [{"name": "t", "type": "sql", "connection": "wh", "sql": "SELECT 1"}],
            }
        )
    )
    bad = tmp_path / "b_bad.json"
    task = {"name": "t", "type": "sql", "connection": "nope", "sql": "x"}
    bad.write_text(json.dumps({"name": "broken", "tasks": [task]}))
    with pytest.raises(CommandError) as err:
        call_command("import_pipelines", str(tmp_path))
    assert "b_bad.json" in str(err.value) and "tasks[0].connection" in str(err.value)
    assert set(Pipeline.objects.values_list("name", flat=True)) == {"seed"}


@pytest.mark.django_db
def test_it_refuses_an_unreadable_import_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(CommandError) as err:
        call_command("import_pipelines", str(bad))
    assert "x.yaml" in str(err.value)


@pytest.mark.django_db
def test_it_backfills_one_run_per_interval(
    make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
    make_pipeline("daily", schedule="0 2 * * *")
    out = run("backfill", "daily", "--start", "2026-01-01", "--end", "2026-01-05")
    assert "5 execution(s) created" in out
    starts = sorted(e.data_interval_start.isoformat() for e in Execution.objects.all())
    assert starts[0] == "2026-01-01T02:00:00+00:00" and starts[-1] == "2026-01-05T02:00:00+00:00"
    assert all(e.trigger == "backfill" for e in Execution.objects.all())
    with pytest.raises(CommandError):
        call_command("backfill", "daily", "--start", "yesterday", "--end", "2026-01-01")


@pytest.mark.django_db
def test_it_runs_demo_twice(settings: Any, tmp_path: Path) -> None:
    settings.DATA_ROOT = tmp_path
    run("demo", "--rows", "50")
    run("demo", "--rows", "50")
    assert set(Pipeline.objects.values_list("name", flat=True)) == {
        "demo_orders_daily",
        "demo_export_csv",
    }


@pytest.mark.django_db
def test_it_refuses_run_pipeline_for_unknown_names_and_bad_params(make_pipeline: Any) -> None:
    with pytest.raises(CommandError):
        call_command("run_pipeline", "nope")
    make_pipeline("withparams", parameters={"n": 1})
    with pytest.raises(CommandError) as err:
        call_command("run_pipeline", "withparams", "--param", "zzz=1")
    assert "parameters.zzz" in str(err.value)
