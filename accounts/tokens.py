"""JWT access and refresh tokens (simplejwt with its blacklist app).

A refresh token is single use: refreshing blacklists it and hands out a new
pair, logout blacklists it. Blacklisting is one insert on a unique key, so
two requests racing with the same refresh token cannot both succeed.
Lifetimes are read from the settings at call time (simplejwt binds them at
import), so ``ACCESS_TOKEN_SECONDS`` and test overrides always apply.

``CachedJWTAuthentication`` checks an access token without reading the user
row: what a request needs of its user (active, the password digest the
token must carry, the role) is cached per user and dropped whenever the
user, their groups or a group changes, so deactivating a user or changing
a password refuses their tokens at the next request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from rest_framework_simplejwt import settings as jwt_settings
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.utils import datetime_from_epoch, get_md5_hash_password

from accounts.permissions import role_of


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


# ------------------------------------------------------ request authentication

# What a request reads of its user; the other fields load on access.
_USER_FIELDS = frozenset({"id", "username", "is_active", "is_superuser", "is_staff"})
# A backstop only: every change through the ORM drops the entry at once.
AUTH_CACHE_SECONDS = 300


def _auth_key(user_id: Any) -> str:
    return f"auth:user:{user_id}"


def _auth_state(user_id: Any) -> dict[str, Any] | None:
    """A user's cached ``{fields, values, digest, role}`` (read on a miss); None: no such user."""
    key = _auth_key(user_id)
    state: dict[str, Any] | None = cache.get(key)
    if state is not None:
        return state or None  # {} caches "no such user"
    user = get_user_model().objects.filter(**{_jwt().USER_ID_FIELD: user_id}).first()
    if user is None:
        cache.set(key, {}, AUTH_CACHE_SECONDS)
        return None
    state = {
        # In the model's field order, as Model.from_db takes them.
        "fields": [f.attname for f in user._meta.concrete_fields if f.attname in _USER_FIELDS],
        "digest": get_md5_hash_password(user.password),
        "role": role_of(user),
    }
    state["values"] = [getattr(user, name) for name in state["fields"]]
    cache.set(key, state, AUTH_CACHE_SECONDS)
    return state


def auth_forget(user_id: Any) -> None:
    """Drop the cached state of a user (it is read again at their next request)."""
    cache.delete(_auth_key(user_id))


# Access tokens verified by this process (signature, type, claims), until
# they expire: a client sends the same token with every request, and
# decoding it again was a fifth of the cheapest request. Only access tokens
# come through here; refresh tokens, the blacklisted ones, never do.
VERIFIED_TOKENS_MAX = 1024
_verified: OrderedDict[bytes, tuple[Any, float, Any]] = OrderedDict()
_verified_lock = threading.Lock()


def _verified_get(raw: bytes) -> Any:
    """The token verified earlier from ``raw``, while unexpired and under the same settings."""
    with _verified_lock:
        entry = _verified.get(raw)
        if entry is None:
            return None
        token, until, settings = entry
        if settings is not _jwt() or time.time() >= until:
            del _verified[raw]
            return None
        _verified.move_to_end(raw)
        return token


def _verified_put(raw: bytes, token: Any) -> None:
    exp = token.payload.get("exp")
    if not isinstance(exp, int | float):
        return  # no expiry: verify it every time
    with _verified_lock:  # past exp it is verified again (simplejwt applies any leeway)
        _verified[raw] = (token, float(exp), _jwt())
        while len(_verified) > VERIFIED_TOKENS_MAX:
            _verified.popitem(last=False)


class CachedJWTAuthentication(JWTAuthentication):
    """simplejwt's check of the access token, answered from the cached user state.

    Refuses as simplejwt does: an unknown user, an inactive one, a token
    issued before the password changed (401). The user is built from the
    cached fields (``Model.from_db``: others load on access, and a save
    writes only the loaded ones). A token verified once is not decoded
    again by this process until it expires (``_verified``); the user's
    state is still checked at every request.
    """

    def get_validated_token(self, raw_token: bytes) -> Token:
        token = _verified_get(raw_token)
        if token is None:
            token = super().get_validated_token(raw_token)
            _verified_put(raw_token, token)
        return token  # type: ignore[no-any-return]

    def get_user(self, validated_token: Token) -> Any:
        try:
            user_id = validated_token[_jwt().USER_ID_CLAIM]
        except KeyError:
            raise InvalidToken("token contained no recognizable user identification") from None
        state = _auth_state(user_id)
        if state is None:
            raise AuthenticationFailed("user not found", code="user_not_found")
        user: Any = get_user_model().from_db(DEFAULT_DB_ALIAS, state["fields"], state["values"])
        if not _jwt().USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed("user is inactive", code="user_inactive")
        if _jwt().CHECK_REVOKE_TOKEN and (
            validated_token.get(_jwt().REVOKE_TOKEN_CLAIM) != state["digest"]
        ):
            raise AuthenticationFailed("the user's password has changed", code="password_changed")
        user._datadog_role = state["role"]  # what accounts.permissions.role_of caches
        return user


def _user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    auth_forget(instance.pk)


def _groups_changed(sender: Any, instance: Any, action: str, pk_set: Any, **kwargs: Any) -> None:
    if not action.startswith("post_") and action != "pre_clear":
        return
    if isinstance(instance, Group):  # group.user_set changed: the users named, or all
        users = pk_set if pk_set else instance.user_set.values_list("pk", flat=True)
        for user_id in users:
            auth_forget(user_id)
    else:
        auth_forget(instance.pk)


def _group_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    # A renamed or deleted group changes the role of its members.
    for user_id in instance.user_set.values_list("pk", flat=True):
        auth_forget(user_id)


def connect_auth_signals() -> None:
    """Drop a user's cached state when they, their groups or a group change (AppConfig.ready)."""
    user_model = get_user_model()
    post_save.connect(_user_changed, sender=user_model, dispatch_uid="auth_forget_save")
    post_delete.connect(_user_changed, sender=user_model, dispatch_uid="auth_forget_delete")
    m2m_changed.connect(
        _groups_changed, sender=user_model.groups.through, dispatch_uid="auth_forget_groups"
    )
    post_save.connect(_group_changed, sender=Group, dispatch_uid="auth_forget_group_save")
    pre_delete.connect(_group_changed, sender=Group, dispatch_uid="auth_forget_group_delete")
