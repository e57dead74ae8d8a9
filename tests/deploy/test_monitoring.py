"""deploy/prometheus and deploy/grafana are checked, not just shipped (SPEC §7, §11).

``promtool`` (Debian package ``prometheus``; ``.ci/run`` installs it) checks
the Prometheus configuration and the alert rules as the compose service
loads them. Every metric name the rules and the Grafana dashboard query is
exported by the stack's ``/metrics`` after a real run (tests/deploy/conftest.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.compose import Compose
from tests.deploy.conftest import DemoRun
from tests.deploy.promql import metric_names
from tests.deploy.stack import BASE, env_from_example
from tests.services import missing

PROMETHEUS = BASE / "deploy" / "prometheus"
DASHBOARD = BASE / "deploy" / "grafana" / "dashboards" / "datadog-platform.json"
# Made by Prometheus itself for each target, never by the target.
SYNTHETIC = {"up"}
# The extra series of each metric type, for families exported without a sample yet.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        missing("promtool (apt-get install prometheus)")
    assert path is not None
    return path


@pytest.mark.parametrize("what", ["config", "rules"])
def test_promtool_accepts_the_configuration(what: str) -> None:
    target = PROMETHEUS / ("prometheus.yml" if what == "config" else "alerts.yml")
    result = subprocess.run(
        [promtool(), "check", what, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if what == "config":
        # The rule file was found and checked with it (rule_files is relative).
        assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_compose_mounts_the_rules_where_the_config_looks() -> None:
    compose = yaml.safe_load((BASE / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    mounted = {v.split(":")[1]: v.split(":")[0] for v in volumes if v.startswith("./")}
    config_path = Path("/etc/prometheus/prometheus.yml")
    assert mounted[str(config_path)] == "./deploy/prometheus/prometheus.yml"
    for rule_file in config["rule_files"]:
        in_container = str(config_path.parent / rule_file)
        assert (BASE / mounted[in_container]).exists()


def _datasource_uids(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["datasource"]["uid"]} if isinstance(node.get("datasource"), dict) else set()
        return own.union(*(_datasource_uids(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_datasource_uids(item) for item in node))
    return set()


def test_grafana_and_prometheus_find_what_compose_gives_them(tmp_path: Path) -> None:
    compose = Compose(BASE / "docker-compose.yml", env_from_example(tmp_path))
    grafana = compose.service("grafana")
    home = grafana.environment()["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert compose.host_path(grafana, home) == DASHBOARD
    provisioning = compose.host_path(grafana, "/etc/grafana/provisioning")
    [provider] = yaml.safe_load((provisioning / "dashboards" / "datadog.yml").read_text())[
        "providers"
    ]
    assert compose.host_path(grafana, provider["options"]["path"]) == DASHBOARD.parent
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose.service("prometheus").config["ports"]
    assert _datasource_uids(json.loads(DASHBOARD.read_text())) == {datasource["uid"]}
    # Prometheus scrapes the web service on the port gunicorn binds, which
    # the app accepts as a host name.
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    [web_job] = [job for job in config["scrape_configs"] if job["job_name"] == "datadog-web"]
    assert web_job["static_configs"][0]["targets"] == ["web:8000"]
    web = compose.service("web")
    assert "8000:8000" in web.config["ports"]
    assert '"WEB_BIND", "0.0.0.0:8000"' in (BASE / "deploy" / "gunicorn.conf.py").read_text()
    assert "web" in web.environment()["ALLOWED_HOSTS"].split(",")
    alertmanager = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager == ["alertmanager:9093"]
    assert "9093:9093" in compose.service("alertmanager").config["ports"]


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ('up{job="datadog-web"} == 0', {"up"}),
        ("datadog_queue_depth > 500", {"datadog_queue_depth"}),
        (
            'sum by (pipeline) (increase(datadog_pipeline_executions_total{status="failed"}[1h]))'
            " / clamp_min(sum by (pipeline) (increase(x_total[1h])), 1) > 0.5 and y >= 4",
            {"datadog_pipeline_executions_total", "x_total", "y"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, view) (rate("
            'a_bucket{view=~"api-.*"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        # Label values and names that look like metrics are not metrics.
        ('m{le="sum", job=~"rate(x)"} offset 5m', {"m"}),
        ("sum(rate(a[5m])) without (instance) / ignoring(code) group_left(x) b", {"a", "b"}),
        ("max_over_time(c[1h:5m]) unless on(job) d or e1e3 * 2e3", {"c", "d", "e1e3"}),
        ('label_replace(f, "dst", "$1", "src", "(.*)")', {"f"}),
        ('g{pipeline=~"${pipeline}"} bool > 1', {"g"}),
        ("ns:metric:rate5m", {"ns:metric:rate5m"}),
    ],
)
def test_metric_names_of_promql(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        nested = [e for key, value in node.items() if key != "expr" for e in _expressions(value)]
        return found + nested
    if isinstance(node, list):
        return [e for item in node for e in _expressions(item)]
    return []


def used_names() -> dict[str, set[str]]:
    """Metric name -> where it is used (alert name or dashboard panel title)."""
    used: dict[str, set[str]] = {}
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, set()).add(f"alert {rule.get('alert') or rule['record']}")
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for expression in _expressions(panel):
            for name in metric_names(expression):
                used.setdefault(name, set()).add(f"panel {panel.get('title')!r}")
    return used


def exported_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_rules_and_the_dashboard_query_something() -> None:
    used = used_names()
    assert len(used) >= 15, sorted(used)
    assert "datadog_pipeline_execution_duration_seconds_bucket" in used


def test_every_metric_the_rules_and_dashboard_use_is_exported(demo_run: DemoRun) -> None:
    exported = exported_names(demo_run.metrics)
    absent = {
        name: sorted(where)
        for name, where in used_names().items()
        if name not in exported and name not in SYNTHETIC
    }
    assert not absent, f"used but not exported by /metrics after a run: {absent}"
