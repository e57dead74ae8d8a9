"""Row addresses a copy of a table without a primary key resumes by (SQLite rowid, PostgreSQL ctid).

A row address is sound to resume by only while the rows keep their
addresses between attempts. Each kind records, in the first attempt's
snapshot, what would show that they may have moved (``version``), and the
copy carries that record in every batch marker. A resume first asks
``changed``; when the table may have changed the copy starts again from row
0 (still exactly one clean run's result) and logs why.

- SQLite ``rowid``: stays with a row on UPDATE; VACUUM renumbers the rowids
  of a table without an INTEGER PRIMARY KEY. VACUUM (like any schema change)
  bumps the file's ``schema_version``, so a different one means "maybe
  renumbered". Inserts get rowids after the greatest, as keys after the
  position do.
- PostgreSQL ``ctid`` (page, item): an UPDATE writes the row's new version
  at a new ctid, anywhere in the table (also before the position), an
  INSERT may fill free space anywhere, and VACUUM FULL, CLUSTER and TRUNCATE
  rewrite the table into a new file. A DELETE and a plain VACUUM move no
  row. So the record is the table's file (``pg_relation_filenode``) and the
  first attempt's snapshot (``pg_current_snapshot``): every row version
  written since has an ``xmin`` that snapshot did not see committed. The
  check on resume is one scan of the table, only when a copy resumes.
  Ranges are pages (``ctid >= '(p,0)' AND ctid < '(q,0)'``, a TID range
  scan, PostgreSQL 14 and later), about ``batch_size`` rows each by the
  table's rows per page.
- MySQL has no row address: a table without a primary key does not resume.
"""

from __future__ import annotations

# Security review (bandit B608): the SQL built here joins identifiers quoted
# by the dialect and SQL the engine generated; values are bound parameters.
from typing import Any, ClassVar

from connectors.base import SqlConnector, split_table

# PostgreSQL xids are 32 bits on disk; a pg_snapshot names 64-bit ones.
_XID_MODULO = 2**32


class RowAddress:
    """A table's row address a copy reads in ranges of (see the module doc)."""

    name: ClassVar[str] = ""

    def __init__(self, source: SqlConnector, table: str) -> None:
        self.source = source
        self.d = source.dialect
        self.table = table
        self.sql_table = source.dialect.table(table)

    def version(self, conn: Any) -> dict[str, Any]:
        """What the first attempt saw, to compare with on resume (JSON)."""
        raise NotImplementedError

    def changed(self, conn: Any, recorded: Any) -> str | None:
        """Why the rows may have moved since ``recorded``; None when they cannot have."""
        raise NotImplementedError

    def range_sql(self, low: list[Any] | None, high: list[Any] | None) -> tuple[str, dict]:
        """The table's rows from position ``low`` (exclusive) to ``high`` (None: unbounded)."""
        raise NotImplementedError

    def next_bound(
        self,
        conn: Any,
        conditions: list[str],
        params: dict[str, Any],
        low: list[Any] | None,
        batch_size: int,
    ) -> list[Any] | None:
        """The position about ``batch_size`` rows after ``low``; None when the rest is one range."""
        raise NotImplementedError

    def parse(self, stored: Any) -> list[Any] | None:
        """A position stored as JSON (one integer)."""
        if not isinstance(stored, list) or len(stored) != 1 or not isinstance(stored[0], int):
            return None
        return [stored[0]]

    def _select(
        self, low: tuple[str, Any] | None, high: tuple[str, Any] | None
    ) -> tuple[str, dict]:
        """The table's rows between two positions, each ``(condition on %(_dd_al)s or
        %(_dd_ah)s, its value)`` or None (unbounded)."""
        conditions, params = [], {}
        for bound, name in ((low, "_dd_al"), (high, "_dd_ah")):
            if bound is not None:
                conditions.append(bound[0])
                params[name] = bound[1]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT * FROM {self.sql_table}{where}", params  # nosec B608

    def _one(self, conn: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
        cur = conn.cursor()
        try:
            cur.execute(sql, params or None)
            return cur.fetchone()
        finally:
            cur.close()


class SqliteRowid(RowAddress):
    name = "rowid"

    def __init__(self, source: SqlConnector, table: str, column: str) -> None:
        super().__init__(source, table)
        self.column = column  # rowid, _rowid_ or oid: whichever no column shadows

    @classmethod
    def find(cls, source: SqlConnector, conn: Any, table: str) -> tuple[RowAddress | None, str]:
        schema, name = split_table(table)
        master = f"{source.dialect.quote(schema)}.sqlite_master" if schema else "sqlite_master"
        found = conn.raw.execute(
            f"SELECT type, sql FROM {master} WHERE name = ?",  # nosec B608
            (name,),
        ).fetchone()
        if found is None or found[0] != "table" or "VIRTUAL" in str(found[1] or "").upper()[:30]:
            return None, f"{table!r} is not a table with a rowid to read it in order of"
        columns = {str(r[1]).lower() for r in source.dialect.table_info(conn, table)}  # type: ignore[attr-defined]
        for alias in ("rowid", "_rowid_", "oid"):
            if alias not in columns:
                return cls(source, table, alias), ""
        return None, f"table {table!r} has columns named rowid, _rowid_ and oid: no rowid to read"

    def _schema_version(self, conn: Any) -> int:
        schema, _ = split_table(self.table)
        prefix = f"{self.d.quote(schema)}." if schema else ""
        return int(conn.raw.execute(f"PRAGMA {prefix}schema_version").fetchone()[0])

    def version(self, conn: Any) -> dict[str, Any]:
        return {"schema_version": self._schema_version(conn)}

    def changed(self, conn: Any, recorded: Any) -> str | None:
        if not isinstance(recorded, dict) or "schema_version" not in recorded:
            return "the first attempt's schema version is not in its batch marker"
        if self._schema_version(conn) != recorded["schema_version"]:
            return (
                "the SQLite file's schema changed since the first attempt (a VACUUM may have"
                " renumbered the rowids)"
            )
        return None

    def _cond(self, op: str, name: str) -> str:
        return f"{self.column} {op} %({name})s"

    def range_sql(self, low: list[Any] | None, high: list[Any] | None) -> tuple[str, dict]:
        return self._select(
            None if low is None else (self._cond(">", "_dd_al"), low[0]),
            None if high is None else (self._cond("<=", "_dd_ah"), high[0]),
        )

    def next_bound(
        self,
        conn: Any,
        conditions: list[str],
        params: dict[str, Any],
        low: list[Any] | None,
        batch_size: int,
    ) -> list[Any] | None:
        # The copy's conditions name the table's columns: they apply to it as is.
        where = list(conditions)
        bound = dict(params)
        if low is not None:
            where.append(self._cond(">", "_dd_al"))
            bound["_dd_al"] = low[0]
        sql = (
            f"SELECT {self.column} FROM {self.sql_table}"  # nosec B608
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {self.column} LIMIT 1 OFFSET {int(batch_size) - 1}"
        )
        row = self._one(conn, sql, bound)
        return [int(row[0])] if row is not None else None


class PostgresCtid(RowAddress):
    name = "ctid"

    def __init__(self, source: SqlConnector, table: str) -> None:
        super().__init__(source, table)
        self.pages: tuple[int, int] | None = None  # (pages in the table, pages a range)

    @classmethod
    def find(cls, source: SqlConnector, conn: Any, table: str) -> tuple[RowAddress | None, str]:
        found = cls(source, table)._one(
            conn,
            "SELECT current_setting('server_version_num')::int,"
            " (SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%(t)s))",
            {"t": source.dialect.table(table)},
        )
        if found is None or int(found[0]) < 140000:
            # Without TID range scans every range would read the whole table.
            return None, "ctid ranges need PostgreSQL 14 or later (TID range scans)"
        if found[1] not in ("r", "m"):
            return None, f"{table!r} is not a plain table with a ctid to read it in order of"
        return cls(source, table), ""

    def version(self, conn: Any) -> dict[str, Any]:
        row = self._one(
            conn,
            "SELECT pg_relation_filenode(to_regclass(%(t)s))::text, pg_current_snapshot()::text",
            {"t": self.sql_table},
        )
        return {"filenode": str(row[0]), "snapshot": str(row[1])}

    def changed(self, conn: Any, recorded: Any) -> str | None:
        if not isinstance(recorded, dict) or not {"filenode", "snapshot"} <= set(recorded):
            return "the first attempt's table version is not in its batch marker"
        now = self.version(conn)
        if now["filenode"] != recorded["filenode"]:
            return (
                "the table was rewritten since the first attempt (VACUUM FULL, CLUSTER, TRUNCATE…)"
            )
        # The first attempt saw the rows whose xmin committed before its
        # snapshot: below the snapshot's xmax and not in progress then (its
        # xip list). A row version with any other xmin was written since
        # (inserted, or an update's new version), at any ctid. xids are
        # compared as 32-bit, modulo 2^32 like PostgreSQL (age()); a frozen
        # xmin reads as 2, older than any.
        _, xmax, xip = str(recorded["snapshot"]).split(":")
        row = self._one(
            conn,
            f"SELECT EXISTS (SELECT 1 FROM {self.sql_table}"  # nosec B608
            " WHERE age(xmin) <= age(%(xmax)s::text::xid) OR xmin::text = ANY(%(xip)s))",
            {
                "xmax": str(int(xmax) % _XID_MODULO),
                "xip": [str(int(x) % _XID_MODULO) for x in xip.split(",") if x],
            },
        )
        if row is not None and row[0]:
            return (
                "rows were inserted or updated since the first attempt"
                " (their ctids may be anywhere)"
            )
        return None

    def _tid(self, page: int) -> str:
        return f"({int(page)},0)"

    def range_sql(self, low: list[Any] | None, high: list[Any] | None) -> tuple[str, dict]:
        return self._select(
            None if low is None else ("ctid >= %(_dd_al)s::tid", self._tid(low[0])),
            None if high is None else ("ctid < %(_dd_ah)s::tid", self._tid(high[0])),
        )

    def _sizes(self, conn: Any, batch_size: int) -> tuple[int, int]:
        if self.pages is None:
            # Read in the copy's snapshot: every row it can see is on a page
            # that existed when it began (the last range is unbounded anyway).
            row = self._one(
                conn,
                "SELECT pg_relation_size(oid) / current_setting('block_size')::bigint,"
                " relpages, reltuples FROM pg_class WHERE oid = to_regclass(%(t)s)",
                {"t": self.sql_table},
            )
            pages, relpages, reltuples = int(row[0]), int(row[1]), float(row[2])
            if relpages > 0 and reltuples > 0:
                per_page = reltuples / relpages
            else:  # never analyzed: count once
                counted = self._one(conn, f"SELECT COUNT(*) FROM {self.sql_table}")  # nosec B608
                per_page = int(counted[0]) / max(pages, 1)
            self.pages = (pages, max(1, int(batch_size / max(per_page, 1.0))))
        return self.pages

    def next_bound(
        self,
        conn: Any,
        conditions: list[str],
        params: dict[str, Any],
        low: list[Any] | None,
        batch_size: int,
    ) -> list[Any] | None:
        pages, step = self._sizes(conn, batch_size)
        high = (low[0] if low is not None else 0) + step
        return [high] if high < pages else None


def row_address(source: SqlConnector, conn: Any, table: str) -> tuple[RowAddress | None, str]:
    """The row address a keyless ``table`` can be read in ranges of; else (None, why not)."""
    if source.dialect.kind == "sqlite":
        return SqliteRowid.find(source, conn, table)
    if source.dialect.kind == "postgresql":
        return PostgresCtid.find(source, conn, table)
    return None, (
        f"table {table!r} has no primary key to read it in order of"
        f" ({source.dialect.kind} has no row address)"
    )
