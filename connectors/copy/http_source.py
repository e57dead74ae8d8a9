"""Copying from a REST API (an ``http`` connection): pages → spool → batches.

Every page is fetched first (``pages``), its records written to a temporary
JSON Lines spool while their column types are inferred (``Inference``), so
memory holds one page at a time whatever the record count. Then the spool is
read back in batches, typed, and copied by the batch path the file sources
use (``copy_batches``: incremental window, transformations, one destination
transaction).
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

from connectors.base import ConnectorError, Watchdog
from connectors.copy.file_source import copy_batches, source_errors
from connectors.copy.sink import Sink
from connectors.copy.spec import CopyFailed, CopySpec
from connectors.copy.values import json_value, parse_batch, parsers
from connectors.http import HttpClient, HttpConnector
from connectors.transform.base import resolve
from connectors.types import Column

# Integers past 64 bits are numeric, not bigint.
_INT64 = 2**63


def dig(body: Any, path: str | None) -> Any:
    """The value at dotted ``path`` in ``body`` (``body`` itself for no path); None when absent."""
    if not path:
        return body
    value = body
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def records_of(body: Any, path: str | None, page: str) -> list[dict[str, Any]]:
    """The records of one page: the list at ``path`` (or the body), each an object.

    ``page`` names the page in errors (``GET /v1/orders page 2``).
    """
    found = dig(body, path)
    if found is None and body is None:
        return []
    if not isinstance(found, list):
        where = f"at {path!r}" if path else "as the body (set records to its path)"
        raise CopyFailed(f"{page}: no list of records {where}")
    for record in found:
        if not isinstance(record, dict):
            raise CopyFailed(f"{page}: a record is not an object")
    return found


def fetch(client: HttpClient, url: str, params: dict[str, Any], at: str) -> Any:
    """One page's body; a failure names the page ``at`` (``GET /v1/orders page 2``)."""
    try:
        return client.get(url, params or None)
    except ConnectorError as exc:
        cause = str(exc).removeprefix(f"{client.where}: ")
        raise type(exc)(f"{client.where}: {at}: {cause}", transient=exc.transient) from exc


def pages(
    client: HttpClient, url: str, params: dict[str, Any], records: str | None, paginate: Any
) -> Iterator[list[dict[str, Any]]]:
    """The records of each page, following ``paginate`` (SPEC §8)."""
    style = (paginate or {}).get("type")
    params = dict(params)
    number = 1
    if style == "page":
        params[paginate["param"]] = int(paginate.get("start", 1))
    if style == "offset":
        params[paginate["limit_param"]] = int(paginate["limit"])
        params[paginate["param"]] = int(paginate.get("start", 0))
    seen_cursors: set[str] = set()
    while True:
        at = f"GET {urlsplit(url).path or '/'} page {number}"
        body = fetch(client, url, params, at)
        found = records_of(body, records, at)
        yield found
        number += 1
        if style == "next_link":
            link = dig(body, paginate["path"])
            if not link:
                return
            if not isinstance(link, str):
                raise CopyFailed(f"{at}: the next link is not a string")
            url, params = urljoin(url, link), {}  # relative to its page
        elif style == "cursor":
            cursor = dig(body, paginate["path"])
            if cursor in (None, "", False) or not found:
                return
            key = json.dumps(cursor)
            if key in seen_cursors:
                raise CopyFailed(f"{at}: the cursor {key[:60]} came back again")
            seen_cursors.add(key)
            params[paginate["param"]] = cursor
        elif style == "page":
            if not found:
                return
            params[paginate["param"]] += 1
        elif style == "offset":
            if not found:
                return
            params[paginate["param"]] += len(found)
        else:
            return


class Inference:
    """Column names in first-seen order and the JSON kinds seen for each (SPEC §8)."""

    def __init__(self) -> None:
        self.kinds: dict[str, set[str]] = {}

    def add(self, record: dict[str, Any]) -> None:
        for name, value in record.items():
            kinds = self.kinds.setdefault(name, set())
            if value is None:
                continue
            if isinstance(value, bool):
                kinds.add("boolean")
            elif isinstance(value, int):
                kinds.add("bigint" if -_INT64 <= value < _INT64 else "numeric")
            elif isinstance(value, float):
                kinds.add("float")
            elif isinstance(value, dict | list):
                kinds.add("json")
            else:
                kinds.add("text")

    def columns(self) -> list[Column]:
        return [Column(name, _type_of(kinds)) for name, kinds in self.kinds.items()]


def _type_of(kinds: set[str]) -> str:
    """integers bigint (numeric past 64 bits), other numbers float, booleans, json; else text."""
    if not kinds:
        return "text"
    for type_, allowed in (
        ("boolean", {"boolean"}),
        ("bigint", {"bigint"}),
        ("numeric", {"bigint", "numeric"}),
        ("float", {"bigint", "numeric", "float"}),
        ("json", {"json"}),
    ):
        if kinds <= allowed:
            return type_
    return "text"


def _source_params(spec: CopySpec) -> dict[str, Any]:
    """The query parameters: literals and ``{param: name}`` resolved, JSON-like text."""
    out: dict[str, Any] = {}
    for name, raw in (spec.source.get("params") or {}).items():
        value = resolve(raw, spec.params)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        texts = [_param_text(item) for item in items]
        out[name] = texts if isinstance(value, list) else texts[0]
    return out


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    value = json_value(value)
    return value if isinstance(value, str) else json.dumps(value)


def _typed(rows: list[tuple], text_positions: list[int]) -> list[tuple]:
    """Rows with non-text values of text columns (a mixed column) written as JSON text."""
    if not text_positions:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i in text_positions:
            value = values[i]
            if value is not None and not isinstance(value, str):
                values[i] = json.dumps(value, ensure_ascii=False)
        out.append(tuple(values))
    return out


def _spool_rows(spool: IO[str], columns: list[Column], size: int) -> Iterator[list[tuple]]:
    names = [c.name for c in columns]
    text_positions = [i for i, c in enumerate(columns) if c.type == "text"]
    parse = parsers(columns)
    spool.seek(0)
    while True:
        lines = list(itertools.islice(spool, size))
        if not lines:
            return
        rows = []
        for line in lines:
            get = json.loads(line).get
            rows.append(tuple(get(name) for name in names))
        yield parse_batch(_typed(rows, text_positions), parse, "http records")


def copy_from_http(spec: CopySpec, source: HttpConnector, sink: Sink) -> dict[str, Any]:
    """Copy the unit of ``spec`` from REST API ``source`` into ``sink`` (one transaction)."""
    ctx = spec.ctx
    src = spec.source
    if "table" in src or "query" in src:
        raise CopyFailed("http sources take a path (and params, records, paginate), not a table")
    path = src.get("path")
    if not isinstance(path, str) or not path:
        raise CopyFailed("http sources take a path: the resource under the base URL")
    params = _source_params(spec)
    inference = Inference()
    count = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        # A cancel or timeout aborts the client: a request in flight ends at once.
        with (
            source_errors(source.where()),
            source.client(ctx) as client,
            Watchdog(ctx, client.abort),
        ):
            pager = pages(client, source.url(path), params, src.get("records"), src.get("paginate"))
            for found in pager:
                for record in found:
                    inference.add(record)
                    spool.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                    spool.write("\n")
                count += len(found)
                ctx.check()
            ctx.log(f"{source.where()}: {count} records in {client.requests} requests")
        if not count:
            # No record: no column is known, so nothing is written (a replace keeps the table).
            return {
                "rows_read": 0,
                "rows_written": 0,
                "skipped": False,
                "passthrough": False,
                "watermark": None,
            }
        columns = inference.columns()
        return copy_batches(
            spec, columns, lambda: _spool_rows(spool, columns, spec.fetch_rows), sink
        )
