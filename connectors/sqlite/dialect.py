"""How SQLite spells things: types by affinity, casts, upserts, PRAGMA introspection."""

from __future__ import annotations

from typing import Any

from connectors.base import ConnectorError, Dialect, split_table
from connectors.types import Column

__all__ = ["SqliteDialect", "from_sqlite", "to_sqlite"]


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
    if column.kind == SqliteDialect.kind and column.native:
        return column.native
    return _CANONICAL_TO_SQLITE.get(column.type, "TEXT")


class SqliteDialect(Dialect):
    kind = "sqlite"
    quote_char = '"'
    # No sha256 in SQLite: masks with sha256 run on batches.
    has_sha256 = False
    # "WHERE true" tells the parser that ON CONFLICT is not a join's ON.
    select_conflict_guard = " WHERE true"

    def ddl_type(self, column: Column, *, key: bool = False) -> str:
        return to_sqlite(column)

    def cast(self, expr: str, type_: str, source_type: str = "text") -> str:
        if type_ in {"integer", "bigint"}:
            return f"CAST({expr} AS INTEGER)"
        if type_ == "numeric":
            return f"CAST({expr} AS TEXT)"
        if type_ == "text":
            return f"CAST({expr} AS TEXT)"
        if type_ == "boolean":
            if source_type in {"boolean", "integer", "bigint"}:
                return f"({expr} <> 0)"
            return self.bool_from_text(expr, "INTEGER")
        if type_ == "date":
            return f"date({expr})"
        if type_ == "timestamp":
            return f"strftime('%Y-%m-%d %H:%M:%f', {expr})"
        if type_ == "json":
            return f"json({expr})"
        raise ConnectorError(f"cast to {type_!r} is not supported on sqlite")

    def sha256(self, expr: str) -> str:
        raise ConnectorError("sqlite has no sha256")

    # ----- the copy engine's questions

    def _pragma_prefix(self, table: str) -> tuple[str, str]:
        """``("schema".`` or nothing, the table's name): PRAGMAs name the schema apart."""
        schema, name = split_table(table)
        return (f"{self.quote(schema)}." if schema else ""), name

    def create_unique_index(self, table: str, index: str, keys: list[str]) -> str:
        # The index takes the schema; the table it is on may not.
        prefix, name = self._pragma_prefix(table)
        cols = ", ".join(self.quote(k) for k in keys)
        return (
            f"CREATE UNIQUE INDEX IF NOT EXISTS {prefix}{self.quote(index)}"
            f" ON {self.quote(name)} ({cols})"
        )

    def table_info(self, conn: Any, table: str) -> list[Any]:
        """``PRAGMA table_info`` rows of ``table`` (none when it does not exist)."""
        prefix, name = self._pragma_prefix(table)
        return list(conn.raw.execute(f"PRAGMA {prefix}table_info({self.quote(name)})").fetchall())

    def primary_key(self, conn: Any, table: str) -> list[str]:
        found = self.table_info(conn, table)
        return [str(r[1]) for r in sorted((r for r in found if r[5]), key=lambda r: r[5])]

    def unique_keys(self, conn: Any, table: str) -> list[list[str]]:
        prefix, name = self._pragma_prefix(table)
        raw = conn.raw
        found = []
        for row in raw.execute(f"PRAGMA {prefix}index_list({self.quote(name)})").fetchall():
            if row[2]:
                info = raw.execute(f"PRAGMA {prefix}index_info({self.quote(row[1])})")
                found.append([r[2] for r in info])
        return found
