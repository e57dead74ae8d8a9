"""Keeping a SQLite connection inside its own file (SPEC §10).

A ``sql`` task runs its author's SQL on the connection, and SQLite's SQL can
reach beyond the file: ``ATTACH`` opens any file the process can read (the
metadata database included), ``VACUUM INTO`` writes a copy anywhere, some
PRAGMAs switch off the engine's own safety or change process-wide settings,
and ``load_extension()`` runs native code. None of that can be told apart by
looking at the SQL text (comments, quoting, ``pragma_*`` table functions), so
the guard sits in SQLite itself:

- an authorizer (``Connection.set_authorizer``) that SQLite asks while it
  compiles every statement, the connector's own and the user's alike, and
  for the ``ATTACH`` that ``VACUUM`` runs internally;
- ``SQLITE_LIMIT_ATTACHED = 0``, so even a statement the authorizer let
  through cannot open a second database file;
- extension loading left off.

Both are set on the connection as soon as it is opened, before any
statement, and belong to the connection, not to a transaction: a task that
runs ``COMMIT`` and then ``ATTACH`` is refused like any other.

``VACUUM`` is refused as a whole. Its ``INTO`` target is only visible as the
file of that internal ``ATTACH``, and plain ``VACUUM`` attaches a temporary
database the same way, so allowing it would mean allowing an attached
database. It could never run in a task anyway: task SQL runs inside a
transaction, where SQLite refuses ``VACUUM``, and ``VACUUM INTO`` the
connection's own file fails because that file exists.

Imports no Django.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ConfinedConnection", "Guard", "confine"]

# PRAGMAs that only read the schema or the state of the connection's own
# file, with or without an argument (``table_info(t)``).
_READING_PRAGMAS = frozenset(
    {
        "application_id",
        "collation_list",
        "compile_options",
        "data_version",
        "encoding",
        "foreign_key_check",
        "foreign_key_list",
        "freelist_count",
        "function_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "quick_check",
        "schema_version",
        "table_info",
        "table_list",
        "table_xinfo",
        "user_version",
    }
)

# PRAGMAs a task may set: they change how this connection behaves on its own
# file and nothing else. ``user_version`` and ``application_id`` are free
# integers for the application.
_SETTABLE_PRAGMAS = frozenset(
    {
        "application_id",
        "analysis_limit",
        "automatic_index",
        "cache_size",
        "case_sensitive_like",
        "defer_foreign_keys",
        "foreign_keys",
        "optimize",
        "recursive_triggers",
        "reverse_unordered_selects",
        "user_version",
    }
)

# Set by the connector itself (``connect()``): a task may read them but not
# change them, since query_only is what makes a read-only connection read
# only, and journal_mode decides how concurrent readers see the file.
_PRODUCT_PRAGMAS = frozenset({"journal_mode", "query_only"})

# Reading-only pragmas whose settable form is not in _SETTABLE_PRAGMAS are
# refused when given a value: ``schema_version = n`` corrupts the file and
# ``page_size`` on the wrong moment rewrites it. Those that take an argument
# that is not a value (a table or index name) are listed here.
_ARGUMENT_PRAGMAS = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)

# SQL functions that reach outside the file: native code, and FTS3's
# tokenizer pointer (off in current builds; refused in case one has it on).
_REFUSED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})


class Guard:
    """The authorizer of one connection and the reason of its last refusal."""

    def __init__(self) -> None:
        self.refused: str | None = None
        self._product = False

    @contextmanager
    def product(self) -> Iterator[None]:
        """Let the connector's own settings through (``journal_mode``, ``query_only``)."""
        self._product = True
        try:
            yield
        finally:
            self._product = False

    def take(self) -> str | None:
        """The reason of the last refusal, once (cleared for the next statement)."""
        refused, self.refused = self.refused, None
        return refused

    def authorize(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, view: str | None
    ) -> int:
        """SQLite's authorizer callback: SQLITE_OK, or SQLITE_DENY with the reason kept."""
        refused = self._refusal(action, arg1, arg2)
        if refused is None:
            return sqlite3.SQLITE_OK
        self.refused = refused
        return sqlite3.SQLITE_DENY

    def _refusal(self, action: int, arg1: str | None, arg2: str | None) -> str | None:
        if action == sqlite3.SQLITE_ATTACH:
            # VACUUM attaches its output (INTO) or a temporary copy the same way.
            return "ATTACH and VACUUM are not allowed (a connection stays in its own file)"
        if action == sqlite3.SQLITE_DETACH:
            return "DETACH is not allowed"
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _REFUSED_FUNCTIONS:
            return f"{(arg2 or '').lower()}() is not allowed"
        if action == sqlite3.SQLITE_PRAGMA:
            return self._pragma_refusal((arg1 or "").lower(), arg2)
        return None

    def _pragma_refusal(self, name: str, value: str | None) -> str | None:
        if name in _PRODUCT_PRAGMAS and (value is None or self._product):
            return None
        if name in _SETTABLE_PRAGMAS:
            return None
        if name in _READING_PRAGMAS and (value is None or name in _ARGUMENT_PRAGMAS):
            return None
        what = "changing PRAGMA" if value is not None else "PRAGMA"
        return f"{what} {name} is not allowed"


class ConfinedConnection(sqlite3.Connection):
    """A sqlite3 connection that carries its guard (``factory=`` of ``sqlite3.connect``)."""

    guard: Guard


def confine(conn: ConfinedConnection) -> None:
    """Put ``conn`` in its own file: authorizer, no attached databases, no extensions.

    Call right after opening, before any statement runs.
    """
    if hasattr(conn, "enable_load_extension"):  # absent when built without it
        conn.enable_load_extension(False)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.guard = Guard()
    conn.set_authorizer(conn.guard.authorize)
