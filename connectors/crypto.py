"""Encryption of connection secrets at rest with MultiFernet over FERNET_KEYS.

The first key encrypts; every key decrypts, so keys rotate by putting a new
key first and running ``rotate_fernet_keys``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretDecryptError(Exception):
    """The stored secrets cannot be read with any key in FERNET_KEYS."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FERNET_KEYS))


def encrypt_json(values: dict[str, Any]) -> str:
    if not values:
        return ""
    return fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise SecretDecryptError(
            "connection secrets cannot be decrypted with FERNET_KEYS"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt ``token`` with the first key."""
    if not token:
        return ""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptError(
            "connection secrets cannot be decrypted with FERNET_KEYS"
        ) from None
