"""Every endpoint but the token ones answers 401 without valid credentials.

The endpoints are read from the OpenAPI schema, so a new endpoint is
covered without touching this file.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.tokens import token_pair
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

TOKEN_PATHS = {"/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/logout"}


def endpoints() -> list[tuple[str, str]]:
    """``(method, path)`` of every operation but the token ones, ids filled in."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = [("get", "/api/v1/schema/"), ("get", "/api/v1/docs/")]
    for path, item in schema["paths"].items():
        if path in TOKEN_PATHS:
            continue
        concrete = path
        for name in ("pipeline_id", "execution_id", "id"):
            concrete = concrete.replace("{" + name + "}", str(uuid.uuid4()))
        concrete = concrete.replace("{task_name}", "t1")
        for method in item:
            if method in {"get", "post", "put", "patch", "delete"}:
                found.append((method, concrete))
    return found


def test_it_covers_every_endpoint_of_section_4() -> None:
    paths = {path for _, path in endpoints()}
    for prefix in ["pipelines", "executions", "connections", "audit-events"]:
        assert any(p.startswith(f"/api/v1/{prefix}") for p in paths), prefix
    assert len(endpoints()) >= 28


def _call(client: APIClient, method: str, path: str) -> Any:
    return getattr(client, method)(path, {}, format="json") if method != "get" else client.get(path)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none(access: str) -> str:
    payload = jwt.decode(access, options={"verify_signature": False})
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


def _tampered(access: str) -> str:
    header, payload, signature = access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["user_id"] = "1" if claims.get("user_id") != "1" else "2"
    return f"{header}.{_b64(claims)}.{signature}"


def _other_key(access: str) -> str:
    payload = jwt.decode(access, options={"verify_signature": False})
    return jwt.encode(
        payload, "another-secret-key-that-is-long-enough-for-hs256", algorithm="HS256"
    )


def _assert_all_401(authorization: str | None) -> None:
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    for method, path in endpoints():
        response = _call(client, method, path)
        assert response.status_code == 401, (
            method,
            path,
            response.status_code,
            response.content[:300],
        )
        if path.startswith("/api/v1/docs"):
            continue  # an HTML page's 401 is JSON too, but not worth a special case here
        assert_error(response, 401)


def test_it_answers_401_without_credentials(db: Any) -> None:
    _assert_all_401(None)


def test_it_answers_401_for_malformed_headers(developer: Any) -> None:
    for header in ["Bearer", "Bearer a b", "Bearer not-a-jwt", "Token abc", "Basic ZGV2MTpw"]:
        _assert_all_401(header)


@pytest.mark.parametrize(
    "forge", [_tampered, _alg_none, _other_key], ids=["tampered", "alg-none", "other-key"]
)
def test_it_answers_401_for_forged_tokens(developer: Any, admin_user: Any, forge: Any) -> None:
    access = token_pair(developer)["access_token"]
    _assert_all_401(f"Bearer {forge(access)}")


def test_it_answers_401_for_an_expired_token(developer: Any, settings: Any) -> None:
    # Long enough for the first request on a loaded CI machine (1 s was not).
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(seconds=5)}
    tokens = token_pair(developer)
    assert tokens["expires_in"] == 5
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert client.get(url("pipelines")).status_code == 200
    expires_at = jwt.decode(tokens["access_token"], options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires_at + 1.1 - time.time()))
    _assert_all_401(f"Bearer {tokens['access_token']}")


def test_it_answers_401_for_a_refresh_token_used_as_access(developer: Any) -> None:
    _assert_all_401(f"Bearer {token_pair(developer)['refresh_token']}")


def test_it_answers_401_for_a_refresh_token_reused_after_rotation(developer: Any) -> None:
    client = APIClient()
    old = token_pair(developer)["refresh_token"]
    assert (
        client.post(url("auth/refresh"), {"refresh_token": old}, format="json").status_code == 200
    )
    assert_error(client.post(url("auth/refresh"), {"refresh_token": old}, format="json"), 401)
    _assert_all_401(f"Bearer {old}")


def test_it_answers_401_for_a_refresh_token_reused_after_logout(developer: Any) -> None:
    client = APIClient()
    old = token_pair(developer)["refresh_token"]
    assert client.post(url("auth/logout"), {"refresh_token": old}, format="json").status_code == 204
    assert_error(client.post(url("auth/refresh"), {"refresh_token": old}, format="json"), 401)


def test_it_answers_401_for_a_deactivated_user(developer: Any) -> None:
    access = token_pair(developer)["access_token"]
    developer.is_active = False
    developer.save()
    _assert_all_401(f"Bearer {access}")


def test_it_answers_json_404_for_unknown_api_paths(api_client_for: Any, developer: Any) -> None:
    response = api_client_for(developer).get(url("no/such/thing"))
    assert_error(response, 404)
