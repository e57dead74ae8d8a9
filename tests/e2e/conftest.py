"""The browser suite's shared fixtures and helpers (Debian's Chromium via Playwright).

Fixtures (found by pytest without imports): ``browser`` (one Chromium per
module), ``page`` (a fresh logged-out context at laptop size) and ``team``
(a developer owning the SQLite connection ``wh``, a viewer and an admin).
Helpers the modules import: ``login``/``logout``, ``shot`` (into the
git-ignored tests/e2e/screenshots), ``snap`` (1400x900 and phone width into a
temporary folder, never committed) and ``serious_violations`` (axe-core).
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.permissions import Role
from tests.factories import PASSWORD
from tests.services import need_chromium

SHOTS = Path(__file__).parent / "screenshots"
# Screenshots of the UI at both widths, to be looked at (never committed).
UI_SHOTS = Path(tempfile.gettempdir()) / "datadog-ui-shots"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 900}
WIDE = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}

# A task that keeps SQLite busy for many seconds (to be cancelled).
SLOW_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) "
    "SELECT count(*) FROM c"
)

BAD_DEFINITION = """\
name: orders_daily
description: Two SQL steps on the warehouse
tags: [sales]
parameters: {min_amount: 100}
tasks:
  - name: prepare
    type: sql
    connection: wh
    sql: CREATE TABLE IF NOT EXISTS totals (amount INTEGER)
  - name: load
    type: sql
    connection: wh
    sql: INSERT INTO totals VALUES (%(min_amount)s)
    depends_on: [prepar]
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = need_chromium()
    from django.contrib.staticfiles import finders
    from playwright.sync_api import sync_playwright

    # Live updates need htmx, which `make install` takes from npm.
    assert finders.find("vendor/htmx/htmx.min.js"), "htmx missing: run `make assets` (npm ci)"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


@pytest.fixture
def team(make_user: Callable[..., Any], sqlite_connection: Callable[..., Any]) -> dict[str, Any]:
    """A developer who owns an SQLite connection ``wh``, a viewer, and an admin."""
    dev = make_user("dev1", Role.DEVELOPER)
    viewer = make_user("view1", Role.VIEWER)
    admin = make_user("admin1", Role.ADMIN)
    conn = sqlite_connection("wh", "wh.sqlite", user=dev)
    # The browser logs in from 127.0.0.1, like every other suite's failed
    # logins: lift any lockout they left in the shared cache.
    from django.test import RequestFactory

    from accounts.lockout import lockout_reset

    local = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1")
    for user in (dev, viewer, admin):
        lockout_reset(local, user.get_username())
    return {"dev": dev, "viewer": viewer, "admin": admin, "conn": conn}


def shot(page: Any, name: str, *, full: bool = True) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def snap(page: Any, name: str, folder: Path = UI_SHOTS) -> None:
    """A screenshot at 1400x900 and one at phone width (the viewport is put back)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for label, viewport in (("wide", WIDE), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.wait_for_timeout(150)
        page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(size or LAPTOP)


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    assert AXE.is_file(), "axe-core missing: run `npm ci`"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def logout(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r".*/login$"))


def customers_table(path: Path, rows: int) -> None:
    """A ``customers`` table of ``rows`` rows in the SQLite file at ``path`` (for the browser)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT)")
    db.executemany(
        "INSERT INTO customers VALUES (?, ?, ?)",
        [(i, f"customer {i}", "Lyon" if i % 2 else "Porto") for i in range(1, rows + 1)],
    )
    db.commit()
    db.close()
