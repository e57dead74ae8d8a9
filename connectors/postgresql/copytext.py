"""Rows of a text source as PostgreSQL COPY text, without parsing the values.

A CSV file's cells and a SQLite table's values (text, integers, floats,
blobs) need not become Python dates and decimals on their way into
PostgreSQL: written as COPY text, PostgreSQL's own input functions check
them against the destination's column types, and a value they refuse fails
the COPY with the column named (``PostgresqlConnector.map_error``). Only
what the batch path did before and PostgreSQL would read otherwise is done
here: an empty text in a column of any type but text is NULL, integers in a
boolean column are true or false, hex text in a bytes column is bytea,
other values in text and JSON columns are JSON (a JSONL file's). The
format is PostgreSQL's text COPY: tab between fields, ``\\N`` for NULL,
backslash escapes for backslash, tab, newline and carriage return.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from typing import Any

from connectors.types import PARSERS

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _special(text: str) -> bool:
    """Whether ``text`` holds a character COPY text escapes (four C scans of a string
    beat one frozenset lookup per character)."""
    return "\\" in text or "\t" in text or "\n" in text or "\r" in text


NULL = "\\N"
_NONE = type(None)
# Column types whose non-text values are written as JSON (JSONL objects, numbers).
_JSON_TEXT = frozenset({"text", "json"})
_NUL = "text with a NUL (0x00) character; PostgreSQL cannot store it"


class CopyTextError(ValueError):
    """A value that cannot be written as COPY text; names the destination column."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f'column "{column}": {problem}')
        self.column = column


def nul_error(rows: list[tuple], names: list[str]) -> CopyTextError | None:
    """The error naming the first text value of ``rows`` that holds NUL, if one does.

    Its row is counted from 1 in this batch (``rows``), the unit the copy writes.
    """
    for number, row in enumerate(rows, start=1):
        for name, value in zip(names, row, strict=True):
            if type(value) is str and "\x00" in value:
                return CopyTextError(name, f"{_NUL} (row {number} of its batch)")
    return None


def _bytea(value: bytes | bytearray | memoryview) -> str:
    return "\\\\x" + bytes(value).hex()


def _field(value: Any, type_: str) -> str:
    """One value of a mixed column as a COPY text field."""
    kind = type(value)
    if value is None:
        return NULL
    if kind is str:
        if value == "" and type_ in PARSERS:
            return NULL  # an empty text is no value of a typed column
        if type_ == "bytes" and not value.startswith("\\x"):
            value = "\\x" + value  # hex digits, as the batch path read them
        return value.translate(_ESCAPES) if _special(value) else value
    if type_ in _JSON_TEXT:
        # As the typed writer puts a non-text value into a text or JSON column.
        return json.dumps(value, default=str).translate(_ESCAPES)
    if kind is bool:
        return "t" if value else "f"
    if kind is int:
        if type_ == "boolean":
            return "t" if value else "f"
        return str(value)
    if kind is float:
        return repr(value)
    if kind is bytes or kind is bytearray or kind is memoryview:
        return _bytea(value)
    return str(value).translate(_ESCAPES)


def _column(values: list[Any], type_: str, name: str) -> Iterable[str]:
    """One column of a batch as COPY text fields: whole-column fast paths, else per value."""
    kinds = set(map(type, values))
    nulls = _NONE in kinds
    kinds.discard(_NONE)
    if kinds <= {str}:
        present = [v for v in values if v is not None] if nulls else values
        joined = "".join(present)
        if "\x00" in joined:
            raise _nul(name, values)
        if type_ == "bytes" or (type_ in PARSERS and "" in present):
            return [_field(v, type_) for v in values]
        if _special(joined):
            values = [v if v is None else v.translate(_ESCAPES) for v in values]
        return [NULL if v is None else v for v in values] if nulls else values
    if type_ != "boolean" and (
        kinds == {int} or (kinds <= {int, float} and type_ not in _JSON_TEXT)
    ):
        # repr is json.dumps for ints and finite floats (a float in a text column may be NaN).
        return [NULL if v is None else repr(v) for v in values] if nulls else map(repr, values)
    if str in kinds and "\x00" in "".join(v for v in values if type(v) is str):
        raise _nul(name, values)
    return [_field(v, type_) for v in values]


def _nul(name: str, values: list[Any]) -> CopyTextError:
    error = nul_error([(v,) for v in values], [name])
    assert error is not None  # nosec B101 - the caller found NUL in ``values``
    return error


def copy_text(rows: list[tuple], names: list[str], types: list[str]) -> bytes:
    """``rows`` (values of columns ``names`` whose source types are ``types``) as COPY text."""
    width = len(names)
    if len(set(map(len, rows))) != 1 or len(rows[0]) != width:
        raise ValueError(f"rows of {width} values expected")
    columns = [
        _column(list(map(operator.itemgetter(i), rows)), types[i], names[i]) for i in range(width)
    ]
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()
