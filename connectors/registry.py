"""The one place that maps a connection ``kind`` to its connector class.

Adding a connector = adding a folder ``connectors/<kind>/`` with one class
that implements ``connectors.base.Connector`` and one line here.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.base import Connector

CONNECTORS: dict[str, str] = {
    "postgresql": "connectors.postgresql.PostgresqlConnector",
    "mysql": "connectors.mysql.MysqlConnector",
    "sqlite": "connectors.sqlite.SqliteConnector",
    "csv": "connectors.csv.CsvConnector",
    "jsonl": "connectors.jsonl.JsonlConnector",
    "http": "connectors.http.HttpConnector",
}

KINDS = tuple(CONNECTORS)


@cache
def connector_class(kind: str) -> type[Connector]:
    """The connector class for ``kind``; KeyError when the kind is unknown."""
    module_name, _, class_name = CONNECTORS[kind].rpartition(".")
    return getattr(import_module(module_name), class_name)  # type: ignore[no-any-return]
