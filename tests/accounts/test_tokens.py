"""accounts.tokens: pairs, single-use refresh tokens, revocation."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.db import connection
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts.tokens import token_pair, token_refresh, token_revoke


@pytest.mark.django_db
def test_it_makes_a_pair_with_the_configured_lifetimes(developer: Any, settings: Any) -> None:
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5)}
    pair = token_pair(developer)
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 300
    access = jwt.decode(pair["access_token"], options={"verify_signature": False})
    refresh = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert access["token_type"] == "access" and refresh["token_type"] == "refresh"
    assert access["exp"] - access["iat"] == 300
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600


@pytest.mark.django_db
def test_it_uses_a_refresh_token_once(developer: Any) -> None:
    first = token_pair(developer)
    second, user = token_refresh(first["refresh_token"])
    assert user == developer and second["refresh_token"] != first["refresh_token"]
    with pytest.raises(InvalidToken):
        token_refresh(first["refresh_token"])
    token_revoke(second["refresh_token"])
    with pytest.raises(InvalidToken):
        token_refresh(second["refresh_token"])


@pytest.mark.django_db(transaction=True)
def test_it_lets_only_one_of_two_racing_refreshes_win(developer: Any) -> None:
    raw = token_pair(developer)["refresh_token"]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def refresh() -> None:
        try:
            barrier.wait()
            token_refresh(raw)
            results.append("ok")
        except InvalidToken:
            results.append("refused")
        except Exception as exc:  # e.g. "database is locked" would be a bug too
            results.append(f"error {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["ok", "refused"], results
