"""System checks that fail ``manage.py check`` (and the commands that run
the checks, such as ``runserver`` and ``migrate``) when the product would
start but serve pages that silently do not work.

The browser UI's live parts (run status, task states, log tails) are htmx
requests; htmx comes from npm at install time. A ``pip install`` without
``npm ci`` used to serve pages whose live parts never updated, with nothing
telling the operator. This check names the missing file and the fix.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.checks import CheckMessage, Error, Tags, register

ASSETS_MISSING = "datadog.E010"


@register(Tags.staticfiles)
def frontend_assets_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """An error per front-end file the pages load that no static finder has."""
    return [
        Error(
            f"front-end asset {path!r} is missing: pages would load without it and "
            "their live parts (run status, task states, logs) would never update",
            hint=f"install the front-end assets: run `npm ci` in {settings.BASE_DIR} "
            "(or `make assets`)",
            id=ASSETS_MISSING,
        )
        for path in settings.FRONTEND_ASSETS
        if not finders.find(path)
    ]
