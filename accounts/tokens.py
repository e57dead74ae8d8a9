"""JWT access and refresh tokens (simplejwt with its blacklist app).

A refresh token is single use: refreshing blacklists it and hands out a new
pair, logout blacklists it. Blacklisting is one insert on a unique key, so
two requests racing with the same refresh token cannot both succeed.
Lifetimes are read from the settings at call time (simplejwt binds them at
import), so ``ACCESS_TOKEN_SECONDS`` and test overrides always apply.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework_simplejwt import settings as jwt_settings
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch, get_md5_hash_password


def _jwt() -> Any:
    # simplejwt rebinds its module-level api_settings when SIMPLE_JWT changes.
    return jwt_settings.api_settings


def token_pair(user: Any) -> dict[str, Any]:
    """``{access_token, token_type, expires_in, refresh_token}`` for ``user``."""
    refresh = RefreshToken.for_user(user)
    refresh.set_exp(lifetime=_jwt().REFRESH_TOKEN_LIFETIME)
    # for_user recorded the outstanding token with the class's lifetime.
    OutstandingToken.objects.filter(jti=refresh[_jwt().JTI_CLAIM]).update(
        token=str(refresh), expires_at=datetime_from_epoch(refresh["exp"])
    )
    access = refresh.access_token
    lifetime = _jwt().ACCESS_TOKEN_LIFETIME
    access.set_exp(from_time=refresh.current_time, lifetime=lifetime)
    return {
        "access_token": str(access),
        "token_type": "bearer",  # nosec B105 - a label, not a secret
        "expires_in": int(lifetime.total_seconds()),
        "refresh_token": str(refresh),
    }


def _load(raw: str) -> tuple[RefreshToken, Any]:
    """The verified refresh token and its active user; InvalidToken (401) otherwise."""
    try:
        token = RefreshToken(raw)  # type: ignore[arg-type]  # checks signature, expiry, type, blacklist
    except TokenError as exc:
        raise InvalidToken(str(exc)) from None
    user_id = token.payload.get(_jwt().USER_ID_CLAIM)
    user = get_user_model().objects.filter(**{_jwt().USER_ID_FIELD: user_id}).first()
    if user is None or not _jwt().USER_AUTHENTICATION_RULE(user):
        raise InvalidToken("no active account for this token")
    if _jwt().CHECK_REVOKE_TOKEN and token.payload.get(
        _jwt().REVOKE_TOKEN_CLAIM
    ) != get_md5_hash_password(user.password):
        raise InvalidToken("the user's password has changed")
    return token, user


def _consume(token: RefreshToken, user: Any) -> None:
    """Blacklist ``token``; InvalidToken when another request already did."""
    jti = token.payload[_jwt().JTI_CLAIM]
    outstanding, _ = OutstandingToken.objects.get_or_create(
        jti=jti,
        defaults={
            "user": user,
            "token": str(token),
            "created_at": token.current_time,
            "expires_at": datetime_from_epoch(token.payload["exp"]),
        },
    )
    _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    if not created:
        raise InvalidToken("token is blacklisted")


@transaction.atomic
def token_refresh(raw: str) -> tuple[dict[str, Any], Any]:
    """A new pair for a valid refresh token, which stops working; and its user."""
    token, user = _load(raw)
    _consume(token, user)
    return token_pair(user), user


@transaction.atomic
def token_revoke(raw: str) -> Any:
    """Blacklist a refresh token (logout); returns its user."""
    token, user = _load(raw)
    _consume(token, user)
    return user
