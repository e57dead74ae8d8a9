"""Markup rules of STYLE.md checked on every main page.

- every ``hx-get`` also works without JavaScript: it sits on a link with the
  same ``href``, on a GET form with the same ``action``, or it polls the URL
  of a real page (the page itself or a log);
- every form field has a label.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from connectors.models import Connection
from tests.factories import make_execution

pytestmark = pytest.mark.django_db


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.label_for: set[str] = set()
        self.in_label = 0
        self.wrapped: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag == "label":
            self.in_label += 1
            if values.get("for"):
                self.label_for.add(values["for"])
        elif self.in_label and values.get("id"):
            self.wrapped.add(values["id"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1


def _pages(owned: Any, developer: Any) -> list[str]:
    execution = make_execution(owned, "running", tasks={"t1": "running"})
    conn = Connection.objects.get(name="wh")
    return [
        "/",
        "/pipelines",
        f"/pipelines/{owned.pk}",
        f"/pipelines/{owned.pk}/edit",
        "/pipelines/new",
        "/runs",
        f"/runs/{execution.pk}",
        f"/runs/{execution.pk}/tasks/t1/log",
        "/connections",
        "/connections/new",
        f"/connections/{conn.pk}",
        "/audit",
    ]


def test_it_gives_every_hx_get_a_real_url(
    owned: Any, admin_user: Any, developer: Any, client_for: Any
) -> None:
    client = client_for(admin_user)
    for url in _pages(owned, developer):
        parser = _Collector()
        parser.feed(client.get(url).content.decode())
        for tag, attrs in parser.elements:
            target = attrs.get("hx-get")
            if target is None:
                continue
            if tag == "a":
                assert attrs.get("href") == target, (url, attrs)
            elif tag == "form":
                assert attrs.get("action") == target and attrs.get("method") == "get", (url, attrs)
            else:
                # A poller refreshing a part of a page, or a part loaded with
                # the page (its fallback a link to the same URL): either way
                # the URL is itself a real page.
                trigger = attrs.get("hx-trigger", "")
                assert "every" in trigger or trigger == "load", (url, tag, attrs)
                assert client.get(target).status_code == 200, (url, target)


def test_it_labels_every_form_field(
    owned: Any, admin_user: Any, developer: Any, client_for: Any
) -> None:
    client = client_for(admin_user)
    for url in _pages(owned, developer):
        parser = _Collector()
        parser.feed(client.get(url).content.decode())
        for tag, attrs in parser.elements:
            if tag not in {"input", "select", "textarea"} or attrs.get("type") in {
                "hidden",
                "submit",
            }:
                continue
            ident = attrs.get("id", "")
            assert ident and (ident in parser.label_for or ident in parser.wrapped), (
                url,
                tag,
                attrs,
            )


def test_it_names_each_page(owned: Any, admin_user: Any, developer: Any, client_for: Any) -> None:
    client = client_for(admin_user)
    for url in _pages(owned, developer):
        content = client.get(url).content.decode()
        assert re.search(r"<title>[^<]+ · DataDog Platform</title>", content), url
        assert content.count("<h1") == 1, url
        assert '<main id="main"' in content and 'href="#main"' in content, url
