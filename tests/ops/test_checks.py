"""ops/checks.py: `manage.py check` fails, naming the fix, without the npm assets."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from ops.checks import ASSETS_MISSING, frontend_assets_check


def test_it_passes_with_the_assets_installed() -> None:
    assert frontend_assets_check() == []


def test_it_fails_the_check_command_without_the_npm_assets(settings: Any) -> None:
    # The settings as they are when node_modules was never installed.
    settings.STATICFILES_DIRS = [django_settings.BASE_DIR / "static"]
    problems = frontend_assets_check()
    # htmx and the editor and graph bundles (built from npm packages by npm ci).
    missing = ["vendor/htmx/htmx.min.js", "bundle/editor.js", "bundle/dag.js"]
    assert [(p.id, p.msg.split("'")[1]) for p in problems] == [
        (ASSETS_MISSING, path) for path in missing
    ]
    assert "npm ci" in str(problems[0].hint)
    with pytest.raises(SystemCheckError, match="npm ci"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_it_names_each_missing_file(settings: Any, tmp_path: Any) -> None:
    settings.STATICFILES_DIRS = [tmp_path]
    assert [p.msg.split("'")[1] for p in frontend_assets_check()] == list(settings.FRONTEND_ASSETS)
