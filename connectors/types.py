"""Canonical column types and the mapping between connector kinds. Imports no Django.

Every connector describes its columns with one of the canonical types below
(plus, where it has one, its own ``native`` type). A destination table is
created from canonical types, except when source and destination are of the
same kind: then the native type is kept (``varchar(120)`` stays
``varchar(120)``, which also keeps PostgreSQL binary COPY possible). The
type maps of each kind live in its dialect (``connectors/<kind>/dialect.py``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

CANONICAL_TYPES = (
    "integer",
    "bigint",
    "float",
    "numeric",
    "text",
    "boolean",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "json",
    "bytes",
    "uuid",
)

# The types ``cast`` accepts (SPEC §2) and the canonical type each gives.
CAST_TYPES = {
    "integer": "integer",
    "bigint": "bigint",
    "numeric": "numeric",
    "text": "text",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "json": "json",
}


@dataclass(frozen=True)
class Column:
    """One column: its name, canonical type and (when known) the kind's native type."""

    name: str
    type: str = "text"
    native: str | None = None
    kind: str | None = None
    nullable: bool = True

    def renamed(self, name: str) -> Column:
        return replace(self, name=name)

    def retyped(self, type_: str) -> Column:
        # A new canonical type invalidates the native one.
        return replace(self, type=type_, native=None, kind=None)


# Each SQL kind maps its own types to and from these: its dialect's
# ``ddl_type`` and the ``from_*`` function of connectors/<kind>/dialect.py.


def numeric_precision(native: str) -> tuple[int, int] | None:
    """``(precision, scale)`` of a ``numeric(p,s)`` / ``decimal(p,s)`` native type."""
    match = re.search(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", native)
    if not match or not re.match(r"(numeric|decimal)", native.strip().lower()):
        return None
    return int(match.group(1)), int(match.group(2) or 0)


# ------------------------------------------------------- value conversions


def text_of(value: Any) -> str | None:
    """A value as PostgreSQL would print it with ``::text`` (for sha256 masks and files)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "), default=str)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)


def json_default(value: Any) -> Any:
    """``json.dumps`` default for values JSON has no type for."""
    if isinstance(value, Decimal):
        # A string keeps every digit; a float would round.
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"t", "true", "1", "yes", "y", "on"}:
        return True
    if lowered in {"f", "false", "0", "no", "n", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_datetime(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


# Parsers from text (CSV cells, SQLite text storage) to Python values.
PARSERS: dict[str, Callable[[str], Any]] = {
    "integer": int,
    "bigint": int,
    "float": float,
    "numeric": Decimal,
    "boolean": _parse_bool,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timestamp": _parse_datetime,
    "timestamptz": _parse_datetime,
    "json": json.loads,
    "bytes": lambda text: bytes.fromhex(text[2:] if text.startswith("\\x") else text),
}


def parser_for(type_: str) -> Callable[[Any], Any] | None:
    """A function turning stored text into the Python value of ``type_`` (None: keep)."""
    parse = PARSERS.get(type_)
    if parse is None:
        return None

    def convert(value: Any) -> Any:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return parse(value)
        if type_ == "boolean" and isinstance(value, int):
            return bool(value)
        if type_ == "numeric" and isinstance(value, int | float):
            return Decimal(str(value))
        return value

    return convert


_INT_RE = re.compile(r"[-+]?\d{1,18}")
_NUM_RE = re.compile(r"[-+]?\d+\.\d+")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_TSTZ_RE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)")


def infer_text_type(values: list[str]) -> str:
    """Canonical type for a column of text cells (CSV): the narrowest that fits all."""
    cells = [v for v in values if v not in (None, "")]
    if not cells:
        return "text"
    for type_, pattern in (
        ("bigint", _INT_RE),
        ("numeric", _NUM_RE),
        ("date", _DATE_RE),
        ("timestamptz", _TSTZ_RE),
        ("timestamp", _TS_RE),
    ):
        if all(pattern.fullmatch(c) for c in cells):
            return type_
    if all(c.lower() in {"true", "false", "t", "f"} for c in cells):
        return "boolean"
    if all(c[:1] in "{[" for c in cells) and all(_is_json(c) for c in cells):
        return "json"
    return "text"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def infer_json_type(values: list[Any]) -> str:
    """Canonical type for a column of JSON values (JSONL)."""
    present = [v for v in values if v is not None]
    if not present:
        return "text"
    if all(isinstance(v, bool) for v in present):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "bigint"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float"
    if all(isinstance(v, dict | list) for v in present):
        return "json"
    if all(isinstance(v, str) for v in present):
        inferred = infer_text_type(present)
        # Digits in a JSON string were written as text on purpose, except
        # decimals (which we write as strings to keep every digit).
        return inferred if inferred not in {"bigint"} else "text"
    return "text"
