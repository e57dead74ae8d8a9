"""The layout's user role comes from accounts.context_processors.role on every page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _audit_link() -> str:
    return f'href="{reverse("audit_log")}"'


def _page(user: Any, url: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_the_admin_links_and_role_to_an_admin(admin_user: Any) -> None:
    html = _page(admin_user, reverse("pipeline_list"))
    assert _audit_link() in html
    assert '<span class="role">admin</span>' in html


@pytest.mark.parametrize("role", ["developer", "operator", "viewer"])
def test_it_hides_the_admin_links_from_other_roles(role: str, request: Any) -> None:
    user = request.getfixturevalue(role)
    html = _page(user, reverse("pipeline_list"))
    assert _audit_link() not in html
    assert f'<span class="role">{role}</span>' in html


def test_it_gives_an_error_page_the_role(viewer: Any) -> None:
    client = Client()
    client.force_login(viewer)
    response = client.get(reverse("pipeline_detail", args=[uuid.uuid4()]))
    assert response.status_code == 404
    assert '<span class="role">viewer</span>' in response.content.decode()
