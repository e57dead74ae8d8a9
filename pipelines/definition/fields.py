"""The checkers of a definition's pipeline-level fields: schedule, time zone, tags,
parameters, failure alerts, and a task's ``depends_on``.

Each takes the checker, the path and the raw value, records what is wrong
and returns the normalized value (``core.checker`` has the generic ones).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from croniter import croniter
from croniter.croniter import CroniterError

from core.checker import Checker, at, idx, is_scalar, kind, ordered, quoted

# Parameters every run has, whatever the definition declares.
BUILTIN_PARAMETERS = frozenset(
    {"execution_id", "logical_date", "data_interval_start", "data_interval_end"}
)

CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-6 or sun-sat"),
)
# croniter's own extensions (H = hashed, R = random) make a schedule depend on
# more than its text; standard cron has neither.
_CRON_HASHED = re.compile(r"(?:^|[,/-])[HhRr](?:$|[,/(-])")


def _cron_valid(expression: str) -> bool:
    """croniter's verdict, treating any exception as invalid."""
    try:
        return bool(croniter.is_valid(expression))
    except Exception:  # croniter raises assorted errors on odd input
        return False


def cron_problem(expression: str) -> str | None:
    """What is wrong with a 5-field cron expression, or None."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            "expected 5 fields (minute hour day-of-month month day-of-week) "
            f"or @hourly/@daily/@weekly/@monthly/@yearly, got {len(fields)} fields"
        )
    for i, ((label, allowed), text) in enumerate(zip(_CRON_FIELDS, fields, strict=True)):
        if _CRON_HASHED.search(text):
            return f"{label} field {quoted(text)}: H and R are not standard cron"
        # Probe one field at a time so the message can say which one is bad.
        probe = ["*"] * 5
        probe[i] = text
        if not _cron_valid(" ".join(probe)):
            return (
                f"{label} field {quoted(text)} is not valid "
                f"(allowed: {allowed}, *, lists, ranges, steps)"
            )
    if not _cron_valid(expression):
        return "not a valid cron expression"
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterError, ValueError):
        return "never matches a date (e.g. February 30)"
    return None


def schedule(c: Checker, path: str, raw: Any) -> str | None:
    """None or a cron expression, normalized to 5 space-separated fields."""
    if raw is None:
        return None
    text = c.string(path, raw)
    if text is None:
        return None
    expression = CRON_ALIASES.get(text.strip().lower(), " ".join(text.split()))
    problem = cron_problem(expression)
    if problem:
        c.add(path, f"invalid cron expression {quoted(text)}: {problem}")
        return None
    return expression


@functools.cache
def _timezones() -> frozenset[str]:
    """IANA zone names known to this machine (read once: it scans the tz database)."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def timezone(c: Checker, path: str, raw: Any) -> str | None:
    """An IANA time zone name such as ``Europe/Paris``."""
    text = c.string(path, raw)
    if text is None:
        return None
    if text not in _timezones():
        c.add(path, f"unknown time zone {quoted(text)} (use an IANA name such as 'Europe/Paris')")
        return None
    return text


def tags(c: Checker, path: str, raw: Any) -> list[str] | None:
    """A list of distinct, non-empty strings."""
    items = c.list_of(path, raw)
    if items is None:
        return None
    tags: list[str] = []
    for i, item in enumerate(items):
        tag = c.string(idx(path, i), item, nonempty=True)
        if tag is not None and len(tag) > 100:
            c.add(idx(path, i), "must be at most 100 characters")
        elif tag is not None and tag in tags:
            c.add(idx(path, i), f"tag {quoted(tag)} is listed twice")
        elif tag is not None:
            tags.append(tag)
    return tags


def _parameter_value(c: Checker, path: str, value: Any) -> Any:
    """A JSON scalar, or a list of them."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not is_scalar(item):
                c.add(idx(path, i), f"expected a string, number, boolean or null, got {kind(item)}")
        return list(value)
    if not is_scalar(value):
        c.add(path, f"expected a string, number, boolean, null or a list, got {kind(value)}")
    return value


def parameters(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """Parameter defaults; also tells the checker which names ``{param: ...}`` may use."""
    params = c.mapping(path, raw)
    if params is None:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            continue
        if key in BUILTIN_PARAMETERS:
            c.add(at(path, key), f"{quoted(key)} is a built-in parameter and cannot be redefined")
        else:
            c.name(at(path, key), key)
        out[key] = _parameter_value(c, at(path, key), value)
    # Declared even when its value is wrong: one problem, not one per use.
    c.parameters = BUILTIN_PARAMETERS | frozenset(out)
    return out


_EMAIL_RE = re.compile(r"\A[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def webhook(c: Checker, path: str, raw: Any) -> str | None:
    """An absolute http(s) URL."""
    text = c.string(path, raw)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok or any(ch.isspace() or not ch.isprintable() for ch in text):
        c.add(path, f"expected an http(s) URL, got {quoted(text)}")
        return None
    if text == redact_url(text):
        # What users who may not edit the pipeline are shown: saved, it would
        # silently replace the real URL and no alert would ever arrive.
        c.add(path, f"{quoted(text)} is a webhook URL with its path hidden; give the full URL")
        return None
    return text


def emails(c: Checker, path: str, raw: Any) -> list[str] | None:
    """One address or a list of them, normalized to a list."""
    items = [raw] if isinstance(raw, str) else c.list_of(path, raw, nonempty=True)
    if items is None:
        return None
    result: list[str] = []
    for i, item in enumerate(items):
        ipath = path if isinstance(raw, str) else idx(path, i)
        address = c.string(ipath, item)
        if address is not None and not _EMAIL_RE.match(address):
            c.add(ipath, f"invalid email address {quoted(address)}")
        elif address is not None:
            result.append(address)
    return result


def on_failure(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """None or ``{webhook?, email?}``: who hears about a failed execution."""
    if raw is None:
        return None
    spec = c.keys(path, raw, optional=("webhook", "email"))
    if spec is None:
        return None
    if "webhook" not in spec and "email" not in spec:
        c.add(path, "needs webhook, email or both (or null for no notification)")
    out: dict[str, Any] = {}
    if "webhook" in spec:
        out["webhook"] = webhook(c, at(path, "webhook"), spec["webhook"])
    if "email" in spec:
        out["email"] = emails(c, at(path, "email"), spec["email"])
    return ordered(spec, out)


def depends_on(c: Checker, path: str, raw: Any) -> list[str] | None:
    """A list of distinct task names (whether they exist is checked later)."""
    items = c.list_of(path, raw)
    if items is None:
        return None
    result: dict[str, None] = {}  # ordered, and O(1) to test for a repeat
    for i, item in enumerate(items):
        name = c.string(idx(path, i), item)
        if name is not None and name in result:
            c.add(idx(path, i), f"task {quoted(name)} is listed twice")
        elif name is not None:
            result[name] = None
    return list(result)


def redact_url(url: str) -> str:
    """``url`` cut to ``scheme://host/…``: what it shows to users who may not hold its secret.

    Slack's webhook URLs carry their token in the path; user info
    (``user:password@``) is dropped too.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/…" if parts.scheme and host else "…"
