"""Login lockout after repeated failures, shared by the API token endpoint and the UI login.

Two counters, both in the cache (Redis in production, so every web process
sees them):

- per username *and* client address: ``LOGIN_LOCKOUT_FAILURES`` failures lock
  that pair out. Keying on the pair, not the username alone, means a stranger
  cannot lock a real user out of their account from another address.
- per client address: ``LOGIN_LOCKOUT_IP_FAILURES`` failures, whatever the
  usernames, lock the address out (password spraying).

A lock lasts ``LOGIN_LOCKOUT_SECONDS``; failures older than that are
forgotten. Every success is audited (``login``); failures are audited
(``login_failed``) up to ``LOGIN_AUDIT_FAILURES_PER_MINUTE`` rows per client
address and minute, then one summary row of that minute counts the rest, so
a flood of failed logins cannot fill the audit table.

Usage, in any login view::

    retry_after = login_check(request, username)
    if retry_after is not None:
        ...answer 429 with Retry-After: retry_after
    user = authenticate(request, username=username, password=password)
    if user is None:
        login_failed(request, username)
    else:
        login_succeeded(request, user)
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from accounts.actor import Actor
from accounts.models import AuditEvent
from accounts.services import audit_record

KEY_PREFIX = "datadog:lockout"


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def failures_allowed() -> int:
    return _setting("LOGIN_LOCKOUT_FAILURES", 5)


def ip_failures_allowed() -> int:
    return _setting("LOGIN_LOCKOUT_IP_FAILURES", 20)


def lock_seconds() -> int:
    return _setting("LOGIN_LOCKOUT_SECONDS", 900)


def audit_failures_per_minute() -> int:
    return _setting("LOGIN_AUDIT_FAILURES_PER_MINUTE", 10)


def client_address(request: HttpRequest) -> str:
    """The client's address, trusting ``X-Forwarded-For`` only behind ``NUM_PROXIES`` proxies.

    The same rule as DRF's throttles: without it anyone could send a fresh
    ``X-Forwarded-For`` per attempt and never be locked out.
    """
    remote = str(request.META.get("REMOTE_ADDR") or "")
    proxies = int(str(settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0))
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return remote
    addresses = [a.strip() for a in str(forwarded).split(",") if a.strip()]
    if not addresses:
        return remote
    return addresses[-min(proxies, len(addresses))]


def _digest(*parts: str) -> str:
    # Usernames are user input: hashing keeps cache keys short and safe.
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _scopes(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    """``(key suffix, failures allowed)`` for the pair and for the address."""
    address = client_address(request)
    return [
        (f"user:{_digest(username.strip().lower(), address)}", failures_allowed()),
        (f"ip:{_digest(address)}", ip_failures_allowed()),
    ]


def _locked_for(request: HttpRequest, username: str) -> int | None:
    now = time.time()
    waits = []
    for scope, _ in _scopes(request, username):
        until = cache.get(f"{KEY_PREFIX}:lock:{scope}")
        if isinstance(until, (int, float)) and until > now:
            waits.append(until - now)
    return max(1, math.ceil(max(waits))) if waits else None


def login_check(request: HttpRequest, username: str) -> int | None:
    """Seconds until ``username`` may try again from this address, or None when allowed.

    When locked out it also records the refused attempt as ``login_failed``,
    so the caller only has to answer 429 with ``Retry-After``.
    """
    wait = _locked_for(request, username)
    if wait is not None:
        _audit_failure(request, username, {"reason": "locked out", "retry_after": wait})
    return wait


def login_failed(
    request: HttpRequest, username: str, *, reason: str = "bad credentials"
) -> int | None:
    """Count a failed attempt and audit it; returns the lock's seconds when this one locks."""
    _audit_failure(request, username, {"reason": reason})
    now = time.time()
    window = lock_seconds()
    for scope, allowed in _scopes(request, username):
        key = f"{KEY_PREFIX}:fail:{scope}"
        # get + set rather than incr: the file cache's incr resets the expiry.
        # Two racing failures may count as one; the login throttle bounds that.
        count = int(cache.get(key) or 0) + 1
        if count >= allowed:
            cache.set(f"{KEY_PREFIX}:lock:{scope}", now + window, timeout=window)
            cache.delete(key)
        else:
            cache.set(key, count, timeout=window)
    return _locked_for(request, username)


def _audit_failure(request: HttpRequest, username: str, details: dict[str, Any]) -> None:
    """Audit one failed attempt: at most ``audit_failures_per_minute()`` rows per address a minute.

    Past that, one summary row of the minute (``details.summary``) holds the
    count of the failures not written one by one (``details.failures``).
    The counter is atomic in Redis (INCR), so concurrent web processes write
    the summary row once; under a burst its count may lag by a few.
    """
    now = time.time()
    minute = int(now // 60)
    key = f"{KEY_PREFIX}:audit:{_digest(client_address(request))}:{minute}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this is the minute's first
        cache.set(key, 1, timeout=120)
        count = 1
    allowed = audit_failures_per_minute()
    if count <= allowed:
        audit_record(
            action="login_failed", by=Actor.stranger(request, name=username), details=details
        )
        return
    summary = {
        "summary": True,
        "reason": "more failed logins from this address in this minute",
        "minute": datetime.fromtimestamp(minute * 60, UTC).isoformat(),
        "failures": count - allowed,
    }
    if count == allowed + 1:
        event = audit_record(action="login_failed", by=Actor.stranger(request), details=summary)
        cache.set(f"{key}:summary", event.pk, timeout=120)
        return
    pk = cache.get(f"{key}:summary")
    if pk is not None:
        # The one audit row ever changed after it is written: the minute's
        # counter, made for that (the rows before it stay as written).
        AuditEvent.objects.filter(pk=pk).update(details=summary)


def login_succeeded(request: HttpRequest, user: Any) -> None:
    """Audit the login and forget this pair's failures.

    The per-address counter is kept: one valid account must not reset the
    count of a password spray from the same address.
    """
    username = user.get_username()
    scope = _scopes(request, username)[0][0]
    cache.delete(f"{KEY_PREFIX}:fail:{scope}")
    audit_record(action="login", by=Actor.of(user, request=request))


def lockout_reset(request: HttpRequest, username: str) -> None:
    """Lift the locks and counters of ``username`` from this request's address (admin use)."""
    for scope, _ in _scopes(request, username):
        cache.delete_many([f"{KEY_PREFIX}:fail:{scope}", f"{KEY_PREFIX}:lock:{scope}"])
