"""Who performs an action: the signed-in user (if any) and where they came from.

Services take an ``Actor`` instead of an HTTP request: the request was only
ever read for the client address the audit trail records, and a management
command, the scheduler or a test has no request at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest


@dataclass(frozen=True)
class Actor:
    """``user`` is a signed-in user or None; ``ip`` the client address, if any.

    ``name`` is what the audit trail records for someone not signed in (the
    user name typed at a failed login); ``anonymous`` marks a web client that
    is not signed in, as opposed to the platform acting on its own.
    """

    user: Any = None
    ip: str | None = None
    name: str = ""
    anonymous: bool = False

    @classmethod
    def from_request(cls, request: HttpRequest, *, name: str = "") -> Actor:
        user = getattr(request, "user", None)
        signed_in = user is not None and getattr(user, "is_authenticated", False)
        return cls(
            user=user if signed_in else None,
            ip=_client_ip(request),
            name=name,
            anonymous=not signed_in,
        )

    @classmethod
    def of(cls, user: Any, *, request: HttpRequest | None = None) -> Actor:
        """``user`` acting (None: the platform), through ``request`` if given.

        The request gives the client address when it does not carry the user
        yet (a login, a token revoked); a command or a test passes none.
        """
        signed_in = user is not None and getattr(user, "is_authenticated", False)
        return cls(
            user=user if signed_in else None,
            ip=_client_ip(request),
            anonymous=request is not None and not signed_in,
        )

    @classmethod
    def stranger(cls, request: HttpRequest, *, name: str = "") -> Actor:
        """Someone not signed in at ``request``; ``name`` is what they typed (a failed login)."""
        return cls(ip=_client_ip(request), name=name, anonymous=True)


def _client_ip(request: HttpRequest | None) -> str | None:
    return (request.META.get("REMOTE_ADDR") or None) if request is not None else None


SYSTEM = Actor()
