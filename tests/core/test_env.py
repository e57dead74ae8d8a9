"""core.env: typed readers that fail naming the variable, never with a silent default."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_int, env_list, env_networks, env_str, env_url

NAME = "DATADOG_TEST_ENV_VALUE"


def refused(call: object, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        call()  # type: ignore[operator]
    assert str(caught.value) == message


def test_it_reads_a_string_stripped_and_gives_the_default_when_unset_or_blank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert env_str(NAME) is None
    assert env_str(NAME, "fallback") == "fallback"
    monkeypatch.setenv(NAME, "   ")
    assert env_str(NAME, "fallback") == "fallback"
    monkeypatch.setenv(NAME, "  value ")
    assert env_str(NAME, "fallback") == "value"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True)]
    + [("0", False), ("False", False), ("no", False), ("off", False), ("", False)],
)
def test_it_reads_booleans_in_their_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_bool(NAME, default=not expected) is expected


def test_it_refuses_any_other_boolean_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert env_bool(NAME, default=True) is True
    monkeypatch.setenv(NAME, "maybe")
    refused(lambda: env_bool(NAME), f"{NAME}: expected true/false, got 'maybe'")


def test_it_reads_integers_within_their_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert env_int(NAME, 7, minimum=1) == 7
    monkeypatch.setenv(NAME, " 12 ")
    assert env_int(NAME, 7, minimum=12) == 12
    monkeypatch.setenv(NAME, "0")
    refused(lambda: env_int(NAME, 7, minimum=1), f"{NAME}: must be at least 1, got 0")
    monkeypatch.setenv(NAME, "2.5")
    refused(lambda: env_int(NAME, 7), f"{NAME}: expected an integer, got '2.5'")


def test_it_reads_a_comma_separated_list_dropping_blanks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = ["a"]
    monkeypatch.delenv(NAME, raising=False)
    listed = env_list(NAME, default)
    assert listed == ["a"] and listed is not default  # the caller may change its copy
    monkeypatch.setenv(NAME, " x, ,y ,,")
    assert env_list(NAME, default) == ["x", "y"]


def test_it_normalizes_networks_and_takes_a_bare_address_as_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(NAME, "10.0.0.0/8, 192.168.1.7, FD00::/8")
    assert env_networks(NAME) == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]
    monkeypatch.delenv(NAME)
    assert env_networks(NAME) == []


@pytest.mark.parametrize("item", ["10.0.0.1/8", "example.com", "10.0.0.0/33"])
def test_it_refuses_a_network_with_host_bits_or_no_address(
    monkeypatch: pytest.MonkeyPatch, item: str
) -> None:
    monkeypatch.setenv(NAME, f"127.0.0.0/8,{item}")
    with pytest.raises(ImproperlyConfigured) as caught:
        env_networks(NAME)
    assert str(caught.value).startswith(f"{NAME}: {item!r} is not a CIDR network (")


def test_it_reads_urls_of_the_given_schemes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    schemes = {"postgresql", "sqlite"}
    monkeypatch.delenv(NAME, raising=False)
    assert env_url(NAME, schemes) is None
    monkeypatch.setenv(NAME, "postgresql://u@db:5432/x")
    assert env_url(NAME, schemes) == "postgresql://u@db:5432/x"
    monkeypatch.setenv(NAME, "sqlite:///var/db.sqlite3")  # a file path, no host
    assert env_url(NAME, schemes) == "sqlite:///var/db.sqlite3"
    monkeypatch.setenv(NAME, "mysql://db/x")
    refused(
        lambda: env_url(NAME, schemes),
        f"{NAME}: scheme must be one of postgresql, sqlite, got 'mysql'",
    )
    monkeypatch.setenv(NAME, "db/x")
    refused(
        lambda: env_url(NAME, schemes),
        f"{NAME}: scheme must be one of postgresql, sqlite, got 'none'",
    )
    monkeypatch.setenv(NAME, "postgresql:///x")
    refused(lambda: env_url(NAME, schemes), f"{NAME}: no host in the URL")
