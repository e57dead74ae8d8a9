"""The outbound host policy (SPEC §10): where connections and webhooks may go.

One rule for every outbound target (database connections, webhooks and,
later, http connections):

- ``host`` is one DNS name or one IP literal: no lists, paths or Unix-socket
  directories, ``@``, brackets, whitespace or control characters;
- it is resolved once per connect, every address it resolves to is checked,
  and the caller connects to those checked addresses (``Target.addresses``),
  so a DNS answer that changes between the check and the connect (DNS
  rebinding) cannot swap the target;
- always refused: unspecified, link-local (cloud metadata), multicast,
  broadcast and reserved addresses, including their IPv4-mapped, -compatible,
  NAT64, 6to4 and Teredo forms; the platform's own metadata database and
  Redis; ``OUTBOUND_DENY_NETWORKS``;
- ``purpose="database"`` may reach loopback and private networks (internal
  databases are the normal case); ``purpose="http"`` (http sources and
  webhooks) reaches only public addresses unless ``OUTBOUND_ALLOW_NETWORKS``
  lists the network.

At validation a name that does not resolve is accepted (the DNS may be one
only the workers see); at connect time it is an error.

Imports no app of this project: Django settings are read lazily, inside the
functions, so the module sits at the bottom of the layers.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import re
import socket
import time
import unicodedata
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "HostRefused",
    "HostUnresolved",
    "Purpose",
    "Target",
    "check",
    "check_url",
    "host_syntax_problem",
    "open_socket",
    "pinned_opener",
    "url_validation_problem",
    "validation_problem",
]

Purpose = Literal["database", "http"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class HostRefused(Exception):
    """The policy refuses the host; the message names the host and the rule."""


class HostUnresolved(HostRefused):
    """The name did not resolve (at connect time; validation lets it pass)."""


@dataclass(frozen=True)
class Target:
    """A checked target: connect to ``addresses`` (in order), name it ``host``.

    ``host`` stays the name for TLS (SNI, certificate name checks) and the
    HTTP ``Host`` header; ``addresses`` are the only places to connect to.
    """

    host: str
    port: int
    addresses: tuple[str, ...]


# ------------------------------------------------------------------ syntax

# One label of a host name: letters, digits, '-' and '_' (container and
# service names such as ``my_db`` carry underscores), not starting or ending
# with '-'. Checked on the ASCII (IDNA) form.
_LABEL_RE = re.compile(r"\A(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")
# A last label that is a number makes the name an IPv4 shorthand for the
# resolver (``127.1``, ``0x7f.1``, ``2130706433``): not a DNS name.
_NUMERIC_LABEL_RE = re.compile(r"\A(0x[0-9a-f]*|[0-9]+)\Z", re.IGNORECASE)


def host_syntax_problem(host: Any) -> str | None:
    """Why ``host`` is not one DNS name or IP literal, or None when it is."""
    if not isinstance(host, str) or not host:
        return "must be a non-empty string"
    shown = repr(host[:100])
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch.isspace() for ch in host):
        return f"host {shown} is refused: whitespace or control characters"
    # Named one by one: each is a way to make a driver go somewhere else.
    if "," in host:
        return f"host {shown} is refused: one host only, not a list"
    if "/" in host or "\\" in host:
        return f"host {shown} is refused: paths and Unix-socket directories are not hosts"
    if "@" in host:
        return f"host {shown} is refused: '@' is not allowed (the user name has its own field)"
    if host.startswith("[") or host.endswith("]"):
        return f"host {shown} is refused: write IPv6 addresses without brackets"
    if _literal(host) is not None:
        return None
    if ":" in host or "%" in host:
        return f"host {shown} is refused: not a valid IP address"
    ascii_name = _ascii_name(host)
    if ascii_name is None or len(ascii_name) > 253:
        return f"host {shown} is refused: not a valid host name"
    labels = ascii_name.removesuffix(".").split(".")
    if not all(_LABEL_RE.match(label) for label in labels):
        return f"host {shown} is refused: not a valid host name"
    if _NUMERIC_LABEL_RE.match(labels[-1]):
        return f"host {shown} is refused: not a valid IP address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _ascii_name(host: str) -> str | None:
    """The IDNA (ASCII) form of a host name, or None when it has none."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return None


# --------------------------------------------------------------- addresses

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_RESERVED_V4 = ipaddress.ip_network("240.0.0.0/4")
_SHARED_V4 = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Metadata services that do not sit in a link-local network.
_CLOUD_METADATA = (
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
)


def _plain(address: IPAddress) -> IPAddress:
    """``address`` without an IPv6 scope id (``fe80::1%eth0`` -> ``fe80::1``)."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


def _forms(address: IPAddress) -> list[IPAddress]:
    """``address`` and every IPv4 address it carries, each to be checked.

    A refused IPv4 address must not pass dressed as IPv6: ``::ffff:a.b.c.d``
    (mapped), ``::a.b.c.d`` (compatible), ``64:ff9b::a.b.c.d`` (NAT64),
    6to4 and Teredo all lead to it.
    """
    address = _plain(address)
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        number = int(address)
        if address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        elif number >> 32 == 0 and number > 1:
            forms.append(ipaddress.IPv4Address(number & 0xFFFFFFFF))
        if address in _NAT64:
            forms.append(ipaddress.IPv4Address(number & 0xFFFFFFFF))
        if address.sixtofour is not None:
            forms.append(address.sixtofour)
        if address.teredo is not None:
            forms.extend(address.teredo)
    return forms


def _connect_form(address: IPAddress) -> IPAddress:
    """The address to connect to: IPv4-mapped as plain IPv4, no scope id."""
    address = _plain(address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _always_refused(address: IPAddress) -> str | None:
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address == _BROADCAST:
        return "broadcast"
    if any(address in network for network in _CLOUD_METADATA):
        return "cloud metadata service"
    if address in _RESERVED_V4:
        return "reserved"
    return None


def _not_public(address: IPAddress) -> str | None:
    """Why an http target may not use ``address`` (unless allowed), or None."""
    if address.is_loopback:
        return "loopback"
    if address in _SHARED_V4:
        return "shared address space"
    if address.is_private:
        return "private network"
    if not address.is_global:
        return "not a public address"
    return None


# ------------------------------------------------------------------ policy


@dataclass(frozen=True)
class _Service:
    """One of the platform's own servers, never a target."""

    what: str
    addresses: frozenset[Any]
    port: int
    database: str | None  # None: any database on that server and port


@dataclass(frozen=True)
class _Policy:
    deny: tuple[IPNetwork, ...]
    allow: tuple[IPNetwork, ...]
    services: tuple[_Service, ...]


@functools.lru_cache(maxsize=16)
def _networks(items: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _policy() -> _Policy:
    """The deployment's lists and services, read from Django settings now.

    Without configured settings (plain-Python use) only the fixed rules hold.
    """
    try:
        from django.conf import settings

        configured = settings.configured
    except ImportError:  # pragma: no cover - Django is always installed here
        configured = False
    if not configured:
        return _Policy((), (), ())
    services: list[_Service] = []
    database = (getattr(settings, "DATABASES", None) or {}).get("default") or {}
    engine = str(database.get("ENGINE", ""))
    if "postgresql" in engine or "mysql" in engine:
        default_port = 5432 if "postgresql" in engine else 3306
        services.append(
            _Service(
                "the platform's metadata database",
                _service_addresses(str(database.get("HOST") or "")),
                int(database.get("PORT") or default_port),
                str(database.get("NAME") or ""),
            )
        )
    redis_url = getattr(settings, "REDIS_URL", None)
    if redis_url:
        parts = urlsplit(str(redis_url))
        services.append(
            _Service(
                "the platform's Redis",
                _service_addresses(parts.hostname or ""),
                parts.port or 6379,
                None,
            )
        )
    return _Policy(
        deny=_networks(tuple(getattr(settings, "OUTBOUND_DENY_NETWORKS", ()) or ())),
        allow=_networks(tuple(getattr(settings, "OUTBOUND_ALLOW_NETWORKS", ()) or ())),
        services=tuple(services),
    )


def _same_server_key(address: IPAddress) -> Any:
    """What identifies a server by address: every loopback address is one machine.

    ``localhost``, ``127.0.0.1``, ``127.0.0.2`` and ``::1`` reach the same
    local server, so they compare equal.
    """
    if address.is_loopback or address.is_unspecified:
        return "loopback"
    return address


# The platform's own hosts are resolved at most this often per process: a
# connect must not cost two extra lookups, and these names are the
# operator's, not a user's, so a short delay before a change counts is safe.
_SERVICE_TTL_SECONDS = 60.0
_service_cache: dict[str, tuple[float, frozenset[Any]]] = {}


def _service_addresses(host: str) -> frozenset[Any]:
    """The comparison keys of a platform server's host (cached for a minute)."""
    now = time.monotonic()
    cached = _service_cache.get(host)
    if cached is not None and cached[0] > now:
        return cached[1]
    keys = _resolve_service(host)
    _service_cache[host] = (now + _SERVICE_TTL_SECONDS, keys)
    return keys


def _resolve_service(host: str) -> frozenset[Any]:
    if not host or host.startswith("/"):
        return frozenset({"loopback"})  # a Unix socket: the server is local
    literal = _literal(host)
    if literal is not None:
        return frozenset(_same_server_key(form) for form in _forms(literal))
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return frozenset()
    keys: set[Any] = set()
    for info in infos:
        address = _literal(str(info[4][0]))
        if address is not None:
            keys.update(_same_server_key(form) for form in _forms(address))
    return frozenset(keys)


def _address_problem(
    address: IPAddress, *, port: int, purpose: Purpose, database: str | None, policy: _Policy
) -> tuple[IPAddress, str] | None:
    """``(form, rule)``: the form of ``address`` a rule refuses, or None when allowed."""
    forms = _forms(address)
    for form in forms:
        rule = _always_refused(form)
        if rule:
            return form, rule
    for form in forms:
        if any(form in network for network in policy.deny):
            return form, "listed in OUTBOUND_DENY_NETWORKS"
    keys = {_same_server_key(form) for form in forms}
    for service in policy.services:
        if port == service.port and keys & service.addresses:
            # The same server may hold other databases users legitimately
            # reach; only the platform's own database on it is refused.
            if service.database is None or database is None or database == service.database:
                return forms[0], service.what
    if purpose == "http":
        for form in forms:
            if any(form in network for network in policy.allow):
                continue
            rule = _not_public(form)
            if rule:
                return form, f"{rule}: http targets must be public or in OUTBOUND_ALLOW_NETWORKS"
    return None


def _refusal(host: str, address: IPAddress, form: IPAddress, rule: str) -> HostRefused:
    """The error naming the host, the address, the form a rule hit and the rule."""
    shown = str(_plain(address))
    if form != _plain(address):
        shown = f"{shown}, that is {form}"
    if _literal(host) is not None:
        return HostRefused(f"host {host!r} is refused: {shown} ({rule})")
    return HostRefused(f"host {host!r} is refused: resolves to {shown} ({rule})")


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order, once each."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    name = _ascii_name(host) or host
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise HostUnresolved(f"host {host!r}: name not resolved") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = _literal(str(info[4][0]))
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostUnresolved(f"host {host!r}: name not resolved")
    return addresses


def check(host: Any, port: int, *, purpose: Purpose, database: str | None = None) -> Target:
    """Resolve ``host`` once and check every address; the Target to connect to.

    Raises HostRefused naming the host and the rule, or HostUnresolved when
    the name does not resolve. Connect only to ``Target.addresses``.
    """
    problem = host_syntax_problem(host)
    if problem:
        raise HostRefused(problem)
    policy = _policy()
    resolved = _resolve(host, port)
    for address in resolved:
        hit = _address_problem(
            address, port=port, purpose=purpose, database=database, policy=policy
        )
        if hit:
            raise _refusal(host, address, *hit)
    connect_to: list[str] = []
    for address in resolved:
        text = str(_connect_form(address))
        if text not in connect_to:
            connect_to.append(text)
    return Target(host=host, port=port, addresses=tuple(connect_to))


def validation_problem(
    host: Any, port: int, *, purpose: Purpose, database: str | None = None
) -> str | None:
    """Why ``host`` is refused when a connection or webhook is saved, or None.

    The same check as at connect time, except that a name that does not
    resolve passes: the workers may see a DNS the web process does not.
    """
    try:
        check(host, port, purpose=purpose, database=database)
    except HostUnresolved:
        return None
    except HostRefused as exc:
        return str(exc)
    return None


def open_socket(target: Target, timeout: float | None) -> socket.socket:
    """A TCP socket connected to one of ``target.addresses``, tried in order.

    Like ``socket.create_connection`` but with no name lookup: only the
    checked addresses are ever dialled.
    """
    error: OSError | None = None
    for address in target.addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((address, target.port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"host {target.host!r}: no address to connect to")


# ------------------------------------------------------------------- URLs

_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_url(url: str) -> Target:
    """``check`` for the host of an http(s) URL (webhooks, http sources)."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        raise HostRefused("not a valid URL") from None
    if port is None or not parts.hostname:
        raise HostRefused("not an http(s) URL with a host")
    return check(parts.hostname, port, purpose="http")


def url_validation_problem(url: str) -> str | None:
    """``validation_problem`` for the host of an http(s) URL; unresolved names pass."""
    try:
        check_url(url)
    except HostUnresolved:
        return None
    except HostRefused as exc:
        return str(exc)
    return None


def _pinned(
    connection_class: type[http.client.HTTPConnection], target: Target
) -> Callable[..., http.client.HTTPConnection]:
    """A ``connection_class`` factory whose connections dial ``target.addresses`` only.

    ``Host``, SNI and the certificate check keep the URL's name; only the
    socket is opened to the checked address.
    """

    def dial(address: Any, timeout: Any, source_address: Any = None) -> socket.socket:
        return open_socket(target, timeout)

    def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        conn = connection_class(*args, **kwargs)
        # http.client opens its socket through this attribute (private, but
        # the narrowest seam: everything after the connect stays stock).
        conn._create_connection = dial  # type: ignore[attr-defined]
        return conn

    return make


class _PinnedHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """http and https through ``_pinned`` connections (replaces both default handlers)."""

    def __init__(self, target: Target) -> None:
        # No TLS context given: HTTPSConnection's default verifies the
        # certificate against the system store and the URL's name.
        urllib.request.HTTPSHandler.__init__(self)
        self.target = target

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_pinned(http.client.HTTPConnection, self.target), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_pinned(http.client.HTTPSConnection, self.target), req)


def pinned_opener(target: Target, *handlers: urllib.request.BaseHandler) -> Any:
    """A urllib opener whose http(s) connections go to ``target.addresses`` only.

    Use it for URLs whose host ``target`` was checked for. Proxies from the
    environment are off: a proxy would resolve the name itself, and the
    check would hold for an address nobody dials.
    """
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _PinnedHandler(target),
        *handlers,
    )
