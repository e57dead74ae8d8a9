"""connectors.crypto: secrets at rest under MultiFernet; keys rotate by putting a new one first."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from connectors.crypto import SecretDecryptError, decrypt_json, encrypt_json, rotate

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
SECRETS = {"password": "s3cret", "token": "t-1"}


def test_it_round_trips_secrets_and_stores_none_as_empty(settings: Any) -> None:
    settings.FERNET_KEYS = [OLD]
    token = encrypt_json(SECRETS)
    assert "s3cret" not in token
    assert decrypt_json(token) == SECRETS
    assert Fernet(OLD.encode()).decrypt(token.encode()) == b'{"password": "s3cret", "token": "t-1"}'
    assert encrypt_json({}) == ""
    assert decrypt_json("") == {}
    assert rotate("") == ""


def test_it_reads_old_secrets_after_a_new_key_is_put_first(settings: Any) -> None:
    settings.FERNET_KEYS = [OLD]
    token = encrypt_json(SECRETS)
    settings.FERNET_KEYS = [NEW, OLD]
    assert decrypt_json(token) == SECRETS
    # What is written now is written with the first key only.
    assert Fernet(NEW.encode()).decrypt(encrypt_json(SECRETS).encode())


def test_it_rotates_a_secret_to_the_first_key_so_the_old_one_can_go(settings: Any) -> None:
    settings.FERNET_KEYS = [OLD]
    token = encrypt_json(SECRETS)
    settings.FERNET_KEYS = [NEW, OLD]
    rotated = rotate(token)
    assert rotated != token
    settings.FERNET_KEYS = [NEW]
    assert decrypt_json(rotated) == SECRETS
    with pytest.raises(SecretDecryptError):
        decrypt_json(token)


@pytest.mark.parametrize("read", [decrypt_json, rotate])
def test_it_says_the_keys_cannot_read_a_secret_without_showing_it(settings: Any, read: Any) -> None:
    settings.FERNET_KEYS = [OLD]
    token = encrypt_json(SECRETS)
    settings.FERNET_KEYS = [NEW]
    with pytest.raises(SecretDecryptError) as caught:
        read(token)
    assert str(caught.value) == "connection secrets cannot be decrypted with FERNET_KEYS"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_it_refuses_a_token_that_is_not_one(settings: Any) -> None:
    settings.FERNET_KEYS = [OLD]
    with pytest.raises(SecretDecryptError):
        decrypt_json("not-a-fernet-token")
