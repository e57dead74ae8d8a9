"""How PostgreSQL spells things: quoting, types, casts, upserts, key introspection."""

from __future__ import annotations

from typing import Any

from connectors.base import TEMP_STAGE, Dialect
from connectors.types import Column, numeric_precision

__all__ = ["PostgresDialect", "from_pg", "to_pg"]

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
    if column.kind == PostgresDialect.kind and column.native:
        return column.native
    if column.type == "numeric" and column.native:
        precision = numeric_precision(column.native)
        if precision:
            return f"numeric({precision[0]},{precision[1]})"
    return _CANONICAL_TO_PG.get(column.type, "text")


class PostgresDialect(Dialect):
    kind = "postgresql"
    quote_char = '"'
    markers_in_schema = True

    def ddl_type(self, column: Column, *, key: bool = False) -> str:
        return to_pg(column)

    def widen_to(self, existing: Column, incoming: Column) -> str | None:
        return to_pg(incoming)

    def widen_column(self, table: str, column: Column, ddl_type: str) -> str:
        return (
            f"ALTER TABLE {self.table(table)} ALTER COLUMN {self.quote(column.name)}"
            f" TYPE {ddl_type}"
        )

    def cast(self, expr: str, type_: str, source_type: str = "text") -> str:
        if type_ == "json":
            # Text holding JSON is parsed; any other value becomes its JSON form.
            if source_type == "text":
                return f"CAST({expr} AS jsonb)"
            return f"to_jsonb({expr})"
        if type_ == "boolean" and source_type == "text":
            return f"CAST(TRIM({expr}) AS boolean)"
        return f"CAST({expr} AS {type_})"

    def sha256(self, expr: str) -> str:
        return f"encode(sha256(convert_to(({expr})::text, 'UTF8')), 'hex')"

    def null_of(self, column: Column) -> str:
        return f"CAST(NULL AS {to_pg(column)})"

    # ----- the copy engine's questions

    def upsert_select(self, table: str, columns: list[str], keys: list[str], source: str) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        key_cols = ", ".join(self.quote(k) for k in keys)
        # DISTINCT ON: a key twice in one copy would make ON CONFLICT
        # touch a row twice, which PostgreSQL refuses.
        return (
            f"INSERT INTO {self.table(table)} ({cols})"  # nosec B608 - quoted names
            f" SELECT DISTINCT ON ({key_cols}) {cols} FROM {source} ORDER BY {key_cols}"
            f"{self.upsert_clause(columns, keys)}"
        )

    def upsert_temp_table(self, table: str) -> str | None:
        # COPY into a temporary table, then one INSERT … ON CONFLICT.
        return (
            f"CREATE TEMP TABLE {TEMP_STAGE} (LIKE {self.table(table)}"
            " INCLUDING DEFAULTS) ON COMMIT DROP"
        )

    def stage_table(self, create: str) -> str:
        # No WAL for rows that are written again at the final commit (half
        # the cost of staging); a server crash empties the stage, which the
        # sink's resume_point notices.
        return create.replace("CREATE TABLE", "CREATE UNLOGGED TABLE", 1)

    def primary_key(self, conn: Any, table: str) -> list[str]:
        cur = conn.cursor()
        try:
            cur.execute(
                "SELECT a.attname::text FROM pg_index i"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = to_regclass(%(t)s) AND i.indisprimary"
                " ORDER BY array_position(i.indkey::int2[], a.attnum)",
                {"t": self.table(table)},
            )
            return [str(r[0]) for r in cur.fetchall()]
        finally:
            cur.close()

    def unique_keys(self, conn: Any, table: str) -> list[list[str]]:
        cur = conn.cursor()
        try:
            cur.execute(
                "SELECT array_agg(a.attname::text) FROM pg_index i"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = to_regclass(%(t)s) AND i.indisunique AND i.indpred IS NULL"
                " GROUP BY i.indexrelid",
                {"t": self.table(table)},
            )
            return [list(r[0]) for r in cur.fetchall()]
        finally:
            cur.close()
