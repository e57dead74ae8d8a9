"""How MySQL / MariaDB spell things: backquotes, types, casts, upserts, the replace swap."""

from __future__ import annotations

import re
from typing import Any

from connectors.base import ConnectorError, Dialect, split_table
from connectors.types import Column, numeric_precision

__all__ = ["MysqlDialect", "from_mysql", "to_mysql"]

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

# DDL types of the canonical types whose MySQL type depends on nothing else.
_CANONICAL_TO_MYSQL = {
    "integer": "INT",
    "bigint": "BIGINT",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "time": "TIME(6)",
    "timestamp": "DATETIME(6)",
    "timestamptz": "DATETIME(6)",
    "json": "JSON",
    "uuid": "CHAR(36)",
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
    if column.kind == MysqlDialect.kind and column.native:
        native = column.native
        if key and native.lower() in {"text", "longtext", "mediumtext", "tinytext"}:
            return "VARCHAR(255)"
        return native
    t = column.type
    if t in _CANONICAL_TO_MYSQL:
        return _CANONICAL_TO_MYSQL[t]
    if t == "numeric":
        precision = numeric_precision(column.native or "")
        if precision:
            return f"DECIMAL({min(precision[0], 65)},{min(precision[1], 30)})"
        return "DECIMAL(38,10)"
    if t == "bytes":
        return "VARBINARY(255)" if key else "LONGBLOB"
    if column.native:
        match = re.fullmatch(r"(?:character varying|varchar)\((\d+)\)", column.native.lower())
        if match and int(match.group(1)) <= 4000:
            return f"VARCHAR({match.group(1)})"
    return "VARCHAR(255)" if key else "LONGTEXT"


class MysqlDialect(Dialect):
    kind = "mysql"
    quote_char = "`"
    # MySQL commits DDL implicitly: a replace loads a shadow table and
    # swaps it in with one atomic RENAME TABLE after the commit.
    transactional_ddl = False

    def ddl_type(self, column: Column, *, key: bool = False) -> str:
        return to_mysql(column, key=key)

    def widen_to(self, existing: Column, incoming: Column) -> str | None:
        return to_mysql(incoming)

    def widen_column(self, table: str, column: Column, ddl_type: str) -> str:
        # MODIFY restates the whole definition: keep NOT NULL where it was.
        null = "" if column.nullable else " NOT NULL"
        return (
            f"ALTER TABLE {self.table(table)} MODIFY COLUMN {self.quote(column.name)}"
            f" {ddl_type}{null}"
        )

    def cast(self, expr: str, type_: str, source_type: str = "text") -> str:
        if type_ in {"integer", "bigint"}:
            return f"CAST({expr} AS SIGNED)"
        if type_ == "numeric":
            return f"CAST({expr} AS DECIMAL(38,10))"
        if type_ in {"text", "json"}:
            # MariaDB has no CAST AS JSON; JSON is text there.
            return f"CAST({expr} AS CHAR)"
        if type_ == "boolean":
            if source_type in {"boolean", "integer", "bigint"}:
                return f"({expr} <> 0)"
            return self.bool_from_text(expr, "SIGNED")
        if type_ == "date":
            return f"CAST({expr} AS DATE)"
        if type_ == "timestamp":
            return f"CAST({expr} AS DATETIME(6))"
        raise ConnectorError(f"cast to {type_!r} is not supported on mysql")

    def sha256(self, expr: str) -> str:
        return f"SHA2({expr}, 256)"

    def null_of(self, column: Column) -> str:
        return "NULL"

    # ----- the copy engine's questions

    def insert_ignore(self, table: str, columns: list[str], values: str) -> str:
        names = ", ".join(self.quote(c) for c in columns)
        return f"INSERT IGNORE INTO {self.table(table)} ({names}) VALUES ({values})"

    def upsert_clause(self, columns: list[str], keys: list[str]) -> str:
        q = self.quote
        others = [c for c in columns if c not in keys]
        first = q(keys[0])
        # No other column: set the key to itself, a no-op ("k = k" alone is
        # ambiguous in an INSERT … SELECT, whose source has a column k too).
        sets = [f"{q(c)} = VALUES({q(c)})" for c in others] or [f"{first} = VALUES({first})"]
        return " ON DUPLICATE KEY UPDATE " + ", ".join(sets)

    def create_like(self, table: str, like: str) -> str:
        return f"CREATE TABLE {self.table(table)} LIKE {self.table(like)}"

    def swap(self, table: str, shadow: str, old: str, exists: bool) -> list[str]:
        q_table, q_shadow, q_old = self.table(table), self.table(shadow), self.table(old)
        statements = [f"DROP TABLE IF EXISTS {q_old}"]
        if exists:
            # One RENAME of both: readers see the old table or the new one.
            statements.append(f"RENAME TABLE {q_table} TO {q_old}, {q_shadow} TO {q_table}")
            statements.append(f"DROP TABLE {q_old}")
        else:
            statements.append(f"RENAME TABLE {q_shadow} TO {q_table}")
        return statements

    def primary_key(self, conn: Any, table: str) -> list[str]:
        schema, name = split_table(table)
        cur = conn.cursor()
        try:
            cur.execute(
                "SELECT column_name FROM information_schema.key_column_usage"
                " WHERE table_schema = COALESCE(%(s)s, DATABASE()) AND table_name = %(t)s"
                " AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
                {"s": schema, "t": name},
            )
            return [str(r[0]) for r in cur.fetchall()]
        finally:
            cur.close()

    def unique_keys(self, conn: Any, table: str) -> list[list[str]]:
        schema, name = split_table(table)
        cur = conn.cursor()
        try:
            cur.execute(
                "SELECT index_name, GROUP_CONCAT(column_name)"
                " FROM information_schema.statistics"
                " WHERE table_schema = COALESCE(%(s)s, DATABASE()) AND table_name = %(t)s"
                " AND non_unique = 0 GROUP BY index_name",
                {"s": schema, "t": name},
            )
            return [str(r[1]).split(",") for r in cur.fetchall()]
        finally:
            cur.close()
