"""Copy errors name the side that failed: ``source <connection>`` or ``destination <connection>``.

On every path: PostgreSQL → PostgreSQL raw COPY pass-through, typed rows
(MariaDB, SQLite), file sinks; real databases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.copy import run_copy
from tests.connectors import data
from tests.connectors.conftest import FakeContext, copy_task, run


def _overflow(pg: Any, dst: Any) -> dict[str, Any]:
    """A bigint source into an integer column it may not widen (discard keeps types)."""
    pg.execute("CREATE TABLE src (n bigint)")
    pg.execute("INSERT INTO src VALUES (1), (5000000000)")
    dst.execute("CREATE TABLE dst (n integer)")
    return copy_task("src", "dst", {"table": "src"}, {"table": "dst", "schema": "discard"})


def _database(connector: Any) -> str:
    return str(connector.config["database"])


@pytest.mark.parametrize("passthrough", [True, False])
def test_a_destination_overflow_names_the_destination(passthrough: bool, pg: Any, pg2: Any) -> None:
    ctx = FakeContext(_overflow(pg, pg2), {"src": pg, "dst": pg2})
    with pytest.raises(ConnectorError) as err:
        run_copy(ctx, pg, pg2, passthrough=passthrough)
    message = str(err.value)
    assert message.startswith(f"destination postgresql 127.0.0.1:5432/{_database(pg2)}: ")
    assert "out of range for type integer" in message
    assert _database(pg) not in message
    assert pg2.query("SELECT COUNT(*) FROM dst")[1][0][0] == 0


def test_a_mysql_destination_overflow_names_the_destination(pg: Any, my: Any) -> None:
    task = _overflow(pg, my)
    with pytest.raises(ConnectorError) as err:
        run(task, {"src": pg, "dst": my})
    message = str(err.value)
    assert message.startswith(f"destination mysql 127.0.0.1:3306/{_database(my)}: ")
    assert "out of range" in message.lower()


@pytest.mark.parametrize("passthrough_pair", [True, False])
def test_a_source_failure_names_the_source(passthrough_pair: bool, pg: Any, request: Any) -> None:
    dst = request.getfixturevalue("pg2" if passthrough_pair else "lite")
    pg.execute("CREATE TABLE src (n integer)")
    pg.execute("INSERT INTO src VALUES (1), (0)")
    task = copy_task("src", "dst", {"query": "SELECT 10 / n AS q FROM src"}, {"table": "dst"})
    with pytest.raises(ConnectorError) as err:
        run(task, {"src": pg, "dst": dst})
    message = str(err.value)
    assert message.startswith(f"source postgresql 127.0.0.1:5432/{_database(pg)}: ")
    assert "division by zero" in message


def test_a_missing_source_table_names_the_source(pg: Any, lite: Any) -> None:
    task = copy_task("src", "dst", {"table": "nowhere"}, {"table": "dst"})
    with pytest.raises(
        ConnectorError, match=r"^source postgresql .*table 'nowhere' does not exist"
    ):
        run(task, {"src": pg, "dst": lite})


def test_a_file_sink_failure_names_the_destination(pg: Any, jsonlc: Any, data_root: Path) -> None:
    pg.execute("CREATE TABLE src (n integer)")
    pg.execute("INSERT INTO src VALUES (1)")
    # The existing file is not JSON lines: reading its keys fails.
    (data_root / "jsonl" / "dst.jsonl").write_text("not json\n")
    task = copy_task("src", "dst", {"table": "src"}, {"table": "dst.jsonl"})
    with pytest.raises(ConnectorError, match=r"^destination jsonl .*dst\.jsonl line 1: not JSON"):
        run(task, {"src": pg, "dst": jsonlc})


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_file_destination_that_cannot_be_replaced_is_named(
    lite: Any, csvc: Any, mode: str
) -> None:
    """A directory where the CSV file should be: the error names the destination, not the source."""
    data.load_sqlite(lite)
    (csvc.directory() / "o.csv").mkdir()
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "o.csv", "mode": mode})
    with pytest.raises(ConnectorError, match=r"^destination csv files_csv: o\.csv: .*directory"):
        run_copy(FakeContext(task), lite, csvc)
