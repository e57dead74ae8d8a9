"""Canonical column types and the mapping between connector kinds. Imports no Django.

Every connector describes its columns with one of the canonical types below
(plus, where it has one, its own ``native`` type). A destination table is
created from canonical types, except when source and destination are of the
same kind: then the native type is kept (``varchar(120)`` stays
``varchar(120)``, which also keeps PostgreSQL binary COPY possible).
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


# ---------------------------------------------------------------- PostgreSQL

_PG_TO_CANONICAL = {
    "int2": "integer",
    "int4": "integer",
    "smallint": "integer",
    "integer": "integer",
    "int8": "bigint",
    "bigint": "bigint",
    "oid": "bigint",
    "float4": "float",
    "float8": "float",
    "real": "float",
    "double precision": "float",
    "numeric": "numeric",
    "money": "numeric",
    "bool": "boolean",
    "boolean": "boolean",
    "date": "date",
    "time": "time",
    "timetz": "time",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "json": "json",
    "jsonb": "json",
    "bytea": "bytes",
    "uuid": "uuid",
}

_CANONICAL_TO_PG = {
    "integer": "integer",
    "bigint": "bigint",
    "float": "double precision",
    "numeric": "numeric",
    "text": "text",
    "boolean": "boolean",
    "date": "date",
    "time": "time",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "json": "jsonb",
    "bytes": "bytea",
    "uuid": "uuid",
}


def from_pg(typname: str) -> str:
    """Canonical type of a PostgreSQL type name (``int4``, ``varchar`` …)."""
    base = typname.split("(")[0].strip().lower()
    return _PG_TO_CANONICAL.get(base, "text")


def to_pg(column: Column) -> str:
    """PostgreSQL DDL type for ``column``."""
    if column.kind == "postgresql" and column.native:
        return column.native
    if column.type == "numeric" and column.native:
        precision = _numeric_precision(column.native)
        if precision:
            return f"numeric({precision[0]},{precision[1]})"
    return _CANONICAL_TO_PG.get(column.type, "text")


# --------------------------------------------------------------------- MySQL

_MYSQL_TO_CANONICAL = {
    "tinyint": "integer",
    "smallint": "integer",
    "mediumint": "integer",
    "int": "integer",
    "integer": "integer",
    "year": "integer",
    "bigint": "bigint",
    "float": "float",
    "double": "float",
    "decimal": "numeric",
    "date": "date",
    "time": "time",
    "datetime": "timestamp",
    "timestamp": "timestamp",
    "json": "json",
    "binary": "bytes",
    "varbinary": "bytes",
    "blob": "bytes",
    "tinyblob": "bytes",
    "mediumblob": "bytes",
    "longblob": "bytes",
    "bit": "integer",
}


def from_mysql(column_type: str) -> str:
    """Canonical type of a MySQL column type (``int(11)``, ``tinyint(1)`` …)."""
    text = column_type.lower().strip()
    if text.startswith("tinyint(1)") or text in {"bool", "boolean"}:
        return "boolean"
    base = re.split(r"[ (]", text, maxsplit=1)[0]
    return _MYSQL_TO_CANONICAL.get(base, "text")


def to_mysql(column: Column, *, key: bool = False) -> str:
    """MySQL DDL type for ``column``; ``key`` columns need an indexable type."""
    if column.kind == "mysql" and column.native:
        native = column.native
        if key and native.lower() in {"text", "longtext", "mediumtext", "tinytext"}:
            return "VARCHAR(255)"
        return native
    t = column.type
    if t == "integer":
        return "INT"
    if t == "bigint":
        return "BIGINT"
    if t == "float":
        return "DOUBLE"
    if t == "numeric":
        precision = _numeric_precision(column.native or "")
        if precision:
            return f"DECIMAL({min(precision[0], 65)},{min(precision[1], 30)})"
        return "DECIMAL(38,10)"
    if t == "boolean":
        return "BOOLEAN"
    if t == "date":
        return "DATE"
    if t == "time":
        return "TIME(6)"
    if t in {"timestamp", "timestamptz"}:
        return "DATETIME(6)"
    if t == "json":
        return "JSON"
    if t == "bytes":
        return "VARBINARY(255)" if key else "LONGBLOB"
    if t == "uuid":
        return "CHAR(36)"
    if column.native:
        match = re.fullmatch(r"(?:character varying|varchar)\((\d+)\)", column.native.lower())
        if match and int(match.group(1)) <= 4000:
            return f"VARCHAR({match.group(1)})"
    return "VARCHAR(255)" if key else "LONGTEXT"


# -------------------------------------------------------------------- SQLite


def from_sqlite(declared: str | None) -> str:
    """Canonical type of a SQLite declared column type (affinity rules, refined)."""
    text = (declared or "").upper()
    if not text:
        return "text"
    if "BOOL" in text:
        return "boolean"
    if "BIGINT" in text or "INT8" in text:
        return "bigint"
    if "INT" in text:
        return "bigint" if text == "INTEGER" else "integer"
    if "TIMESTAMPTZ" in text:
        return "timestamptz"
    if "DATETIME" in text or "TIMESTAMP" in text:
        return "timestamp"
    if text.startswith("DATE"):
        return "date"
    if text.startswith("TIME"):
        return "time"
    if "DEC" in text or "NUMERIC" in text:
        return "numeric"
    if "JSON" in text:
        return "json"
    if "UUID" in text:
        return "uuid"
    if "CHAR" in text or "CLOB" in text or "TEXT" in text:
        return "text"
    if "BLOB" in text:
        return "bytes"
    if "REAL" in text or "FLOA" in text or "DOUB" in text:
        return "float"
    if "NUM" in text or "DEC" in text:
        return "numeric"
    return "text"


_CANONICAL_TO_SQLITE = {
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "float": "REAL",
    # TEXT affinity (the name contains TEXT): SQLite's NUMERIC affinity
    # would store 12.50 as a float and lose digits.
    "numeric": "DECIMAL_TEXT",
    "text": "TEXT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "json": "JSON",
    "bytes": "BLOB",
    "uuid": "UUID",
}


def to_sqlite(column: Column) -> str:
    """SQLite DDL type for ``column``."""
    if column.kind == "sqlite" and column.native:
        return column.native
    return _CANONICAL_TO_SQLITE.get(column.type, "TEXT")


def _numeric_precision(native: str) -> tuple[int, int] | None:
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
