"""The outbound host policy (core.outbound) with real resolution and real sockets.

Names that resolve come from the system resolver ('localhost'), names that
do not from the reserved '.invalid' domain. DNS rebinding is simulated by
the one thing outside the machine a test cannot run: a DNS server whose
answer changes between two lookups (socket.getaddrinfo patched to answer
differently the second time); the listeners that receive (or not) the
connection are real.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import outbound
from tests.net import REFUSED_HOSTS, Listener, RebindingDns
from tests.workers import run_check, wait_for

# A database port no platform service listens on: when the suite's own
# metadata database is PostgreSQL on 127.0.0.1:5432 (CI), checks on 5432
# without a database name are refused as the metadata database, rightly.
DB_PORT = 15432


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


REFUSED_FORMS = [
    *REFUSED_HOSTS,
    ("host\x00", "control characters"),
    ("db host", "whitespace"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("fe80::1%lo", "link-local"),
    ("::a9fe:a9fe", "169.254.169.254 (link-local)"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254 (link-local)"),
    ("2002:a9fe:a9fe::1", "169.254.169.254 (link-local)"),
    ("fd00:ec2::254", "cloud metadata"),
    ("127.1", "not a valid IP address"),
    ("2130706433", "not a valid IP address"),
    ("-db.example.com", "not a valid host name"),
    ("a" * 64 + ".example.com", "not a valid host name"),
]


@pytest.mark.parametrize(("host", "rule"), REFUSED_FORMS)
@pytest.mark.parametrize("purpose", ["database", "http"])
def test_it_refuses_each_host_form_for_every_purpose(host: str, rule: str, purpose: Any) -> None:
    with pytest.raises(outbound.HostRefused) as caught:
        outbound.check(host, 5432, purpose=purpose)
    assert not isinstance(caught.value, outbound.HostUnresolved)
    assert rule in str(caught.value)
    assert repr(host[:100]) in str(caught.value)  # names the host as given
    # Validation says the same (a refusal is never "not resolved").
    assert outbound.validation_problem(host, 5432, purpose=purpose) == str(caught.value)


def test_it_resolves_names_and_checks_what_they_resolve_to(settings: Any) -> None:
    target = outbound.check("localhost", DB_PORT, purpose="database")
    assert target.host == "localhost" and target.port == DB_PORT
    assert target.addresses and all(a == "::1" or a.startswith("127.") for a in target.addresses)
    # An http target may not reach loopback, by name or literal ...
    for host in ("localhost", "127.0.0.1", "::1", "10.1.2.3", "100.64.0.1", "fd12::1"):
        problem = outbound.validation_problem(host, 80, purpose="http")
        assert problem is not None and "OUTBOUND_ALLOW_NETWORKS" in problem, host
    assert "resolves to 127.0.0.1 (loopback" in str(
        outbound.validation_problem("localhost", 80, purpose="http")
    )
    # ... unless the deployment allows the network; link-local never.
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8", "::1/128", "169.254.0.0/16"]
    assert outbound.check("127.0.0.1", 80, purpose="http").addresses == ("127.0.0.1",)
    problem = outbound.validation_problem("169.254.169.254", 80, purpose="http")
    assert problem is not None and "link-local" in problem
    assert outbound.validation_problem("10.1.2.3", 80, purpose="http") is not None


def test_it_treats_an_unresolved_name_as_valid_but_unconnectable() -> None:
    assert outbound.validation_problem("db.x.invalid", 5432, purpose="database") is None
    with pytest.raises(outbound.HostUnresolved, match="'db.x.invalid': name not resolved"):
        outbound.check("db.x.invalid", 5432, purpose="database")


def test_it_refuses_deny_networks_even_for_databases(settings: Any) -> None:
    assert outbound.check("127.0.0.1", DB_PORT, purpose="database")
    settings.OUTBOUND_DENY_NETWORKS = ["127.0.0.0/8"]
    for host in ("127.0.0.1", "localhost", "::ffff:127.0.0.1"):
        with pytest.raises(outbound.HostRefused, match="OUTBOUND_DENY_NETWORKS"):
            outbound.check(host, DB_PORT, purpose="database")
    # Deny wins over allow.
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    with pytest.raises(outbound.HostRefused, match="OUTBOUND_DENY_NETWORKS"):
        outbound.check("127.0.0.1", 80, purpose="http")


# Only the setting is read (by core.outbound); no test database is touched.
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_it_refuses_the_metadata_database_but_not_its_neighbours(settings: Any) -> None:
    settings.DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "localhost",
            "PORT": "5432",
            "NAME": "datadog_meta",
        }
    }
    # The name in DATABASE_URL and any other spelling of the same machine.
    for host in ("localhost", "127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        problem = outbound.validation_problem(
            host, 5432, purpose="database", database="datadog_meta"
        )
        assert problem is not None and "metadata database" in problem, host
    # Another database on the same server, or another port, is a user's.
    assert outbound.check("127.0.0.1", 5432, purpose="database", database="sales")
    assert outbound.check("127.0.0.1", 5433, purpose="database", database="datadog_meta")
    # A Unix-socket HOST is this machine too.
    settings.DATABASES["default"]["HOST"] = ""
    with pytest.raises(outbound.HostRefused, match="metadata database"):
        outbound.check("localhost", 5432, purpose="database", database="datadog_meta")


def test_it_refuses_the_platform_redis_on_any_database(settings: Any) -> None:
    settings.REDIS_URL = "redis://localhost:6379/3"
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    for purpose in ("database", "http"):
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(outbound.HostRefused, match="platform's Redis"):
                outbound.check(host, 6379, purpose=purpose, database="0")  # type: ignore[arg-type]
    assert outbound.check("127.0.0.1", 6380, purpose="database")


def test_it_connects_only_to_the_checked_address_when_dns_rebinds(
    monkeypatch: pytest.MonkeyPatch, settings: Any, listener: Listener
) -> None:
    # The attacker's second answer: 127.0.0.2, denied, with a listener of its own.
    evil = Listener("127.0.0.2", listener.port)
    try:
        settings.OUTBOUND_DENY_NETWORKS = ["127.0.0.2/32"]
        dns = RebindingDns(monkeypatch, "rebind.test", ["127.0.0.1", "127.0.0.2"])
        target = outbound.check("rebind.test", listener.port, purpose="database")
        assert target.addresses == ("127.0.0.1",)
        sock = outbound.open_socket(target, 2)
        sock.sendall(b"hello")
        sock.close()
        wait_for(lambda: listener.accepted == [b"hello"], timeout=5, what="the checked listener")
        assert evil.accepted == []
        assert dns.lookups == 1  # resolved once; opening did not ask again
        # Checked again, the new answer is refused.
        with pytest.raises(outbound.HostRefused, match="127.0.0.2.*OUTBOUND_DENY_NETWORKS"):
            outbound.check("rebind.test", listener.port, purpose="database")
    finally:
        evil.close()


def test_it_refuses_a_name_when_any_of_its_addresses_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = socket.getaddrinfo

    def two_answers(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "split.test":
            return real("127.0.0.1", port, *args, **kwargs) + real(
                "169.254.169.254", port, *args, **kwargs
            )
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    with pytest.raises(outbound.HostRefused) as caught:
        outbound.check("split.test", DB_PORT, purpose="database")
    assert str(caught.value) == (
        "host 'split.test' is refused: resolves to 169.254.169.254 (link-local)"
    )


def test_it_stops_start_on_a_bad_network_naming_the_variable(tmp_path: Path) -> None:
    for name in ("OUTBOUND_DENY_NETWORKS", "OUTBOUND_ALLOW_NETWORKS"):
        result = run_check(tmp_path, **{name: "10.0.0.0/8, 10.0.0.1/8"})
        assert result.returncode != 0
        assert f"{name}: '10.0.0.1/8' is not a CIDR network" in result.stderr
    result = run_check(tmp_path, OUTBOUND_DENY_NETWORKS="10.0.0.0/8, fd00::/8")
    assert result.returncode == 0, result.stderr
