"""One connection per path under DATA_ROOT (SPEC §10).

File connections (``csv``, ``jsonl``, ``sqlite``) read and write paths under
DATA_ROOT. Sharing a connection is how a team lets another reach its files,
so a second connection onto the same directory, a directory inside it or one
containing it would bypass sharing: such paths are refused.

Paths are compared as the connectors resolve them (symlinks followed, ``.``
and doubled slashes normalised), which is also the only filesystem access
here: whether a path exists changes no answer (but for the operator's
DBT_PROJECTS_ROOT, below), so a refusal tells nothing about another team's
files. The message never names the other connection either.

The platform's own files are never a connection's: the embedded metadata
database (a SQLite connection on it would need no ATTACH), VAR_DIR with
its generated keys, when DATA_ROOT is configured around them, and
DBT_PROJECTS_ROOT (dbt projects are code the workers run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection as db

from connectors.base import Connector, ConnectorError
from connectors.models import Connection
from connectors.registry import KINDS, connector_class
from connectors.sqlite import sqlite_files

__all__ = [
    "PATH_OVERLAP",
    "PATH_RESERVED",
    "connection_path_problem",
    "connection_path_problem_at_use",
    "lock_paths",
]

PATH_OVERLAP = "overlaps another connection's path under DATA_ROOT"
PATH_RESERVED = "overlaps the platform's own files (metadata database, keys, dbt projects)"

# Any constant: the key of the PostgreSQL advisory lock that serialises path
# claims ("ddpaths" in ASCII).
_LOCK_KEY = 0x64647061746873


def connection_path_problem(*, kind: str, config: Any, exclude: Any = None) -> str | None:
    """Why a ``kind`` connection may not have ``config``'s path, or None.

    ``exclude`` is the connection being changed (its own path is no
    conflict). A path the connector refuses (absolute, ``..``, out of
    DATA_ROOT) answers its reason; one that equals, contains or lies inside
    another connection's answers PATH_OVERLAP.
    """
    try:
        mine = connector_class(kind)(name="", config=config).data_paths()
    except ConnectorError as exc:
        return str(exc)
    if not mine:
        return None
    if any(_nested(a, b) for a in mine for b in _platform_paths()):
        return PATH_RESERVED
    others = Connection.objects.filter(kind__in=_path_kinds()).only("name", "kind", "config")
    if exclude is not None:
        others = others.exclude(pk=exclude)
    for other in others.iterator():
        try:
            theirs = connector_class(other.kind)(name=other.name, config=other.config).data_paths()
        except ConnectorError:
            continue  # a stored path that is no longer valid reaches nothing
        if any(_nested(a, b) for a in mine for b in theirs):
            return PATH_OVERLAP
    return None


# Connections whose path this process found clear, as they were then:
# (id, updated_at, DATA_ROOT, VAR_DIR). See connection_path_problem_at_use.
_CLEAR: set[tuple[Any, Any, str, str]] = set()


def connection_path_problem_at_use(conn: Connection) -> str | None:
    """``connection_path_problem`` for a stored connection about to be used.

    Every save through the connection services is checked (and path claims
    serialised), so a connection found clear stays clear until it changes:
    only a connection saved past the rule (before it existed) can overlap.
    That legacy check runs once per process and connection version; a clear
    answer is remembered, a refusal never is (it is asked again, and stays
    refused until one of the overlapping connections changes).
    """
    key = (conn.pk, conn.updated_at, str(settings.DATA_ROOT), str(settings.VAR_DIR))
    if key in _CLEAR:
        return None
    problem = connection_path_problem(kind=conn.kind, config=conn.config, exclude=conn.pk)
    if problem is None:
        _CLEAR.add(key)
    return problem


def lock_paths() -> None:
    """Serialise path claims until the transaction ends.

    Two requests could otherwise each find the other's path free and both
    save. On SQLite every writing transaction already holds the database's
    write lock from its start (IMMEDIATE), so only PostgreSQL needs one.
    """
    if db.vendor == "postgresql":
        with db.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _platform_paths() -> list[Path]:
    """The platform's files that DATA_ROOT may reach when configured around them."""
    paths: list[Path] = []
    if db.vendor == "sqlite":
        paths += sqlite_files(Path(db.settings_dict["NAME"]).resolve())
    var_dir = Path(settings.VAR_DIR).resolve()
    root = Path(settings.DATA_ROOT).resolve()
    # The default DATA_ROOT (VAR_DIR/data) lies inside VAR_DIR: no path under
    # it reaches VAR_DIR's other files. Any other layout is checked.
    if var_dir not in root.parents:
        paths.append(var_dir)
    # dbt projects are code the workers run (docs/dbt.md): no copy may write
    # there. Only once the folder exists, so that a connection on DATA_ROOT
    # itself stays valid where dbt is not used.
    dbt_root = Path(settings.DBT_PROJECTS_ROOT).resolve()
    if dbt_root.is_dir():
        paths.append(dbt_root)
    return paths


def _nested(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def _path_kinds() -> list[str]:
    """The kinds whose connections own paths under DATA_ROOT."""
    return [k for k in KINDS if connector_class(k).data_paths is not Connector.data_paths]
