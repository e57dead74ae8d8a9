"""The outbound host policy through the API (SPEC §10): 400 at save, refusal at connect.

Every refused form of ``config.host`` answers 400 on that path for both
server kinds; a row whose host was never validated (written to the database
directly) or whose host a new deny list covers fails the connection test and
the task at connect time, and a real listener on loopback proves that no
packet left. Webhooks: loopback refused unless ``OUTBOUND_ALLOW_NETWORKS``
lists it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection as metadata

from connectors.models import Connection
from pipelines import runner
from pipelines.models import Execution, ExecutionStatus
from tests.http import assert_error, url
from tests.net import REFUSED_HOSTS, Listener

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

KINDS = {"postgresql": 5432, "mysql": 3306}


@pytest.fixture
def dev(api_client_for: Any, developer: Any) -> Any:
    return api_client_for(developer)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def create(client: Any, kind: str, name: str = "target", **config: Any) -> Any:
    body = {
        "name": name,
        "kind": kind,
        "config": {
            "host": "127.0.0.1",
            "port": KINDS[kind],
            "database": "shop",
            "username": "reader",
            "password": "pw-never-shown",
            **config,
        },
    }
    return client.post(url("connections"), body, format="json")


def host_error(response: Any) -> str:
    body = assert_error(response, 400, "config.host")
    return str(next(e["message"] for e in body["errors"] if e["path"] == "config.host"))


@pytest.mark.parametrize(("host", "rule"), REFUSED_HOSTS)
@pytest.mark.parametrize("kind", KINDS)
def test_it_answers_400_on_config_host_for_each_refused_form(
    dev: Any, kind: str, host: str, rule: str
) -> None:
    message = host_error(create(dev, kind, host=host))
    assert rule in message and "is refused" in message
    assert not Connection.objects.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_it_refuses_a_change_of_host_to_a_refused_one(dev: Any, kind: str) -> None:
    created = create(dev, kind)
    assert created.status_code == 201, created.content
    changed = dev.patch(
        url(f"connections/{created.json()['id']}"),
        {"config": {**created.json()["config"], "host": "::ffff:169.254.169.254"}},
        format="json",
    )
    assert "link-local" in host_error(changed)
    assert Connection.objects.get().config["host"] == "127.0.0.1"


@pytest.mark.parametrize("kind", KINDS)
def test_it_refuses_control_characters_in_any_config_value(dev: Any, kind: str) -> None:
    response = create(
        dev,
        kind,
        database="shop\nhost=169.254.169.254",
        username="reader\r",
        password="pw\x07never-shown",
        options={"application_name": "app\x1b"},
    )
    body = assert_error(response, 400)
    paths = {e["path"]: e["message"] for e in body["errors"]}
    for path in ("config.database", "config.username", "config.password"):
        assert paths[path] == "contains control characters", body
    assert paths["config.options.application_name"] == "contains control characters"
    assert "never-shown" not in response.content.decode()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize("kind", KINDS)
def test_it_refuses_the_metadata_database(dev: Any, settings: Any, kind: str) -> None:
    if metadata.vendor == "postgresql":
        own = metadata.settings_dict
        host, port, name = own["HOST"] or "localhost", int(own["PORT"] or 5432), own["NAME"]
    else:
        # Embedded SQLite here: check the rule against a server as production has it.
        host, port, name = "localhost", 5432, "datadog_meta"
        settings.DATABASES = {
            **settings.DATABASES,
            "default": {
                **settings.DATABASES["default"],
                "ENGINE": "django.db.backends.postgresql",
                "HOST": host,
                "PORT": str(port),
                "NAME": name,
            },
        }
    for spelling in (host, "127.0.0.1", "::1"):
        message = host_error(create(dev, kind, host=spelling, port=port, database=name))
        assert "metadata database" in message
    # Another database on the same server is a user's to reach.
    other = create(dev, kind, host=host, port=port, database=f"{name}_not")
    assert other.status_code == 201, other.content


@pytest.mark.parametrize("kind", KINDS)
def test_it_refuses_the_platform_redis(dev: Any, settings: Any, kind: str) -> None:
    settings.REDIS_URL = settings.REDIS_URL or "redis://localhost:6379/0"
    redis = urlsplit(settings.REDIS_URL)
    for host in (redis.hostname, "127.0.0.1"):
        message = host_error(create(dev, kind, host=host, port=redis.port or 6379))
        assert "the platform's Redis" in message


@pytest.mark.parametrize("kind", KINDS)
def test_it_refuses_a_loopback_database_in_deny_networks(
    dev: Any, settings: Any, kind: str
) -> None:
    assert create(dev, kind, name="allowed").status_code == 201
    settings.OUTBOUND_DENY_NETWORKS = ["127.0.0.0/8"]
    for host in ("127.0.0.1", "localhost"):
        assert "OUTBOUND_DENY_NETWORKS" in host_error(create(dev, kind, host=host))


@pytest.mark.parametrize("kind", KINDS)
def test_it_refuses_at_connect_time_with_no_packet_sent(
    dev: Any, settings: Any, listener: Listener, kind: str
) -> None:
    created = create(dev, kind, port=listener.port)
    assert created.status_code == 201, created.content
    connection_id = created.json()["id"]
    tested = f"connections/{connection_id}/test"
    # A host no validation saw: what libpq would split into a list of two.
    row = Connection.objects.get()
    Connection.objects.filter(pk=row.pk).update(
        config={**row.config, "host": "x.invalid,127.0.0.1"}
    )
    result = dev.post(url(tested)).json()
    assert result["ok"] is False
    assert "host 'x.invalid,127.0.0.1' is refused: one host only" in result["error"]
    # A valid host the deployment has denied since the connection was made.
    Connection.objects.filter(pk=row.pk).update(config=row.config)
    settings.OUTBOUND_DENY_NETWORKS = ["127.0.0.1/32"]
    result = dev.post(url(tested)).json()
    assert result["ok"] is False
    assert "127.0.0.1 (listed in OUTBOUND_DENY_NETWORKS)" in result["error"]
    assert listener.accepted == []


# Transactional: the run is queued on commit, as in production.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", KINDS)
def test_it_fails_the_task_naming_the_host_and_rule(
    dev: Any, listener: Listener, no_broker: list[Any], kind: str
) -> None:
    created = create(dev, kind, port=listener.port)
    assert created.status_code == 201, created.content
    row = Connection.objects.get()
    Connection.objects.filter(pk=row.pk).update(
        config={**row.config, "host": "::ffff:169.254.169.254"}
    )
    pipeline = dev.post(
        url("pipelines"),
        {
            "name": "reach",
            "tasks": [{"name": "t", "type": "sql", "connection": "target", "sql": "SELECT 1"}],
        },
        format="json",
    )
    assert pipeline.status_code == 201, pipeline.content
    started = dev.post(
        url(f"pipelines/{pipeline.json()['pipeline_id']}/execute"), {}, format="json"
    )
    assert started.status_code == 200, started.content
    assert runner.run_task(str(no_broker[0])) == "failed"

    execution = Execution.objects.get(pk=started.json()["execution_id"])
    assert execution.status == ExecutionStatus.FAILED
    (task,) = dev.get(url(f"executions/{execution.pk}")).json()["tasks"]
    assert (
        "host '::ffff:169.254.169.254' is refused: ::ffff:a9fe:a9fe, that is 169.254.169.254"
        " (link-local)" in task["error"]
    ), task
    assert listener.accepted == []


def webhook_pipeline(client: Any, webhook: str, name: str = "alerting") -> Any:
    return client.post(
        url("pipelines"),
        {
            "name": name,
            "on_failure": {"webhook": webhook},
            "tasks": [{"name": "t", "type": "sql", "connection": "wh", "sql": "SELECT 1"}],
        },
        format="json",
    )


@pytest.mark.usefixtures("wh")
def test_it_refuses_loopback_and_link_local_webhooks_unless_allowed(
    dev: Any, settings: Any
) -> None:
    for webhook in (
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.0.0.1/hook",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data",
    ):
        body = assert_error(webhook_pipeline(dev, webhook), 400, "on_failure.webhook")
        (message,) = [e["message"] for e in body["errors"] if e["path"] == "on_failure.webhook"]
        assert "is refused" in message and "/hook" not in message, message
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    assert_error(
        webhook_pipeline(dev, "http://[::ffff:a9fe:a9fe]/latest"), 400, "on_failure.webhook"
    )
    created = webhook_pipeline(dev, "http://127.0.0.1:8080/hook")
    assert created.status_code == 201, created.content
    # A name the web process cannot resolve may be one only the workers see.
    other = webhook_pipeline(dev, "https://hooks.x.invalid/hook", name="alerting2")
    assert other.status_code == 201, other.content
