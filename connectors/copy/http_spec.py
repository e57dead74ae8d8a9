"""What a copy task's http source may say, checked when a definition is saved (SPEC §8).

``{connection, path, params, records, paginate}``: ``path`` under the
connection's base URL, ``params`` its query (literals, lists of literals,
``{param: name}`` or ``{output: [task, key]}``), ``records`` the dotted path
to the list in each page, ``paginate`` one of four styles. Whether the
connection is an http one is known at run time only (the checker sees names).
"""

from __future__ import annotations

from typing import Any

from core.checker import Checker, at, is_scalar, kind, ordered

HTTP_SOURCE_KEYS = ("path", "params", "records", "paginate")
MAX_LIMIT = 100_000

# Each style's required and optional keys (besides ``type``).
PAGINATION: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "next_link": (("path",), ()),
    "cursor": (("param", "path"), ()),
    "page": (("param",), ("start",)),
    "offset": (("param", "limit_param", "limit"), ("start",)),
}


def _control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _text(c: Checker, path: str, value: Any) -> str | None:
    text = c.string(path, value, nonempty=True)
    if text is not None and _control(text):
        c.add(path, "must not contain control characters")
        return None
    return text


def _resource(c: Checker, path: str, value: Any) -> str | None:
    """A path under the base URL: no scheme or host, no '..', no query."""
    text = _text(c, path, value)
    if text is None:
        return None
    if "://" in text or text.startswith("//"):
        c.add(path, "must be a path under the connection's base URL, not a URL")
    elif ".." in text.split("/"):
        c.add(path, "must not contain '..'")
    elif "?" in text or "#" in text:
        c.add(path, "must not hold a query: give it as params")
    else:
        return text
    return None


def _dotted(c: Checker, path: str, value: Any) -> str | None:
    text = _text(c, path, value)
    if text is not None and any(not part for part in text.split(".")):
        c.add(path, "must be a dotted path such as data or meta.next_cursor")
        return None
    return text


def _params(c: Checker, path: str, raw: Any) -> dict[str, Any]:
    values = c.mapping(path, raw) or {}
    out: dict[str, Any] = {}
    for name, value in values.items():
        if not isinstance(name, str):
            continue
        vpath = at(path, name)
        if not name or _control(name):
            c.add(vpath, "a query parameter name must be non-empty without control characters")
        elif isinstance(value, dict):
            out[name] = c.param_ref(vpath, value)
        elif isinstance(value, list) and all(is_scalar(v) for v in value):
            out[name] = list(value)
        elif is_scalar(value):
            out[name] = value
        else:
            c.add(
                vpath,
                "expected a literal, a list, {param: name} or {output: [task, key]},"
                f" got {kind(value)}",
            )
    return out


def _paginate(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    style = raw.get("type") if isinstance(raw, dict) else None
    if style not in PAGINATION:
        if isinstance(raw, dict) and "type" in raw:
            c.choice(at(path, "type"), style, PAGINATION, "pagination type")
        else:
            c.keys(path, raw, required=("type",))
        return None
    required, optional = PAGINATION[style]
    page = c.keys(path, raw, required=("type", *required), optional=optional)
    if page is None:
        return None
    out: dict[str, Any] = {"type": style}
    for key in ("path",):
        if key in page:
            out[key] = _dotted(c, at(path, key), page[key])
    for key in ("param", "limit_param"):
        if key in page:
            out[key] = _text(c, at(path, key), page[key])
    if "limit" in page:
        out["limit"] = c.integer(at(path, "limit"), page["limit"], 1, MAX_LIMIT)
    if "start" in page:
        out["start"] = c.integer(at(path, "start"), page["start"], 0, 2**31)
    if out.get("param") is not None and out.get("param") == out.get("limit_param"):
        c.add(at(path, "limit_param"), "must differ from param")
    return ordered(page, out)


def check_http_source(c: Checker, path: str, source: dict[str, Any]) -> dict[str, Any]:
    """The normalized http keys of ``source`` (``path`` and those given)."""
    out: dict[str, Any] = {"path": _resource(c, at(path, "path"), source["path"])}
    if "params" in source:
        out["params"] = _params(c, at(path, "params"), source["params"])
    if "records" in source:
        out["records"] = _dotted(c, at(path, "records"), source["records"])
    if "paginate" in source:
        out["paginate"] = _paginate(c, at(path, "paginate"), source["paginate"])
    return out
