"""File and REST API sources name themselves in copy errors: ``source <kind> <connection>: …``.

Each error names the file and its row or line, or the URL's path and page;
real files, a real local HTTP server (tests/rest_api.py), real SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.http import HttpConnector
from tests.connectors.conftest import copy_task, run
from tests.rest_api import RestApi, sample


@pytest.fixture(autouse=True)
def allow_loopback(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def rest() -> Iterator[HttpConnector]:
    with RestApi(sample(3)) as server:
        yield HttpConnector(name="shop_api", config={"base_url": server.base_url})


def _copy(table: str, source: Any, lite: Any) -> Any:
    return run(
        copy_task("src", "dst", {"table": table}, {"table": "out"}), {"src": source, "dst": lite}
    )


def _nothing_written(lite: Any) -> bool:
    """No row reached the destination (the table may exist: created before the rows)."""
    if lite.query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'out'")[1] == [(0,)]:
        return True
    return bool(lite.query("SELECT COUNT(*) FROM out")[1] == [(0,)])


def test_it_names_the_csv_row_and_column_of_a_value_that_does_not_parse(
    csvc: Any, lite: Any
) -> None:
    # 1,500 good rows make the column an integer by inference (its first 1,000
    # rows); row 1,200 is not one.
    lines = ["id,n"] + [f"{i},{i}" for i in range(1, 1501)]
    lines[1200] = "1200,twelve"
    (csvc.directory() / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ConnectorError,
        match=r"^source csv files_csv: t\.csv: row 1200, column 'n': .*'twelve'",
    ):
        _copy("t.csv", csvc, lite)
    assert _nothing_written(lite)


def test_it_names_a_csv_file_that_is_not_utf8(csvc: Any, lite: Any) -> None:
    (csvc.directory() / "t.csv").write_bytes(b"id,name\n1,caf\xe9\n")
    with pytest.raises(ConnectorError, match=r"^source csv files_csv: t\.csv: .*utf-8"):
        _copy("t.csv", csvc, lite)


def test_it_names_a_missing_csv_file(csvc: Any, lite: Any) -> None:
    with pytest.raises(ConnectorError, match=r"^source csv files_csv: file 'gone\.csv' does not"):
        _copy("gone.csv", csvc, lite)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_it_names_an_unreadable_file(csvc: Any, lite: Any) -> None:
    path = csvc.directory() / "t.csv"
    path.write_text("id\n1\n")
    path.chmod(0)
    with pytest.raises(ConnectorError, match=r"^source csv files_csv: t\.csv: .*Permission denied"):
        _copy("t.csv", csvc, lite)


def test_it_names_the_jsonl_line_that_is_not_json(jsonlc: Any, lite: Any) -> None:
    # Past the 1,000 lines inference reads: the copy's read finds it.
    lines = [f'{{"id": {i}}}' for i in range(1, 1201)]
    lines[1099] = '{"id": 1100,'
    (jsonlc.directory() / "t.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ConnectorError, match=r"^source jsonl files_jsonl: t\.jsonl line 1100: not JSON"
    ):
        _copy("t.jsonl", jsonlc, lite)
    assert _nothing_written(lite)


def test_it_names_a_jsonl_line_that_is_not_an_object(jsonlc: Any, lite: Any) -> None:
    (jsonlc.directory() / "t.jsonl").write_text('{"id": 1}\n[2]\n')
    with pytest.raises(
        ConnectorError, match=r"^source jsonl files_jsonl: t\.jsonl line 2: not an object$"
    ):
        _copy("t.jsonl", jsonlc, lite)


def _http(path: str, rest: HttpConnector, lite: Any) -> Any:
    return run(
        copy_task("api", "dst", {"path": path}, {"table": "out"}), {"api": rest, "dst": lite}
    )


def test_an_http_4xx_names_the_source_and_the_path(rest: HttpConnector, lite: Any) -> None:
    with pytest.raises(
        ConnectorError,
        match=r"^source http 127\.0\.0\.1: GET /api/missing page 1: not found \(HTTP 404\)$",
    ):
        _http("/missing", rest, lite)
    assert _nothing_written(lite)


def test_a_non_json_answer_names_the_source_and_the_path(rest: HttpConnector, lite: Any) -> None:
    with pytest.raises(
        ConnectorError,
        match=r"^source http 127\.0\.0\.1: GET /api/text page 1: the answer is not JSON$",
    ):
        _http("/text", rest, lite)


def test_a_page_without_records_names_the_source(rest: HttpConnector, lite: Any) -> None:
    where = r"^source http 127\.0\.0\.1: GET /api/nested page 1: "
    with pytest.raises(ConnectorError, match=where + "no list of records as the body"):
        _http("/nested", rest, lite)


def test_a_destination_error_still_names_the_destination(
    csvc: Any, pg: Any, tmp_path: Path
) -> None:
    """The source's wrapper leaves the sink's errors alone."""
    (csvc.directory() / "t.csv").write_text("n\n1\n5000000000\n")
    pg.execute("CREATE TABLE out (n integer)")
    task = copy_task("src", "dst", {"table": "t.csv"}, {"table": "out", "schema": "discard"})
    with pytest.raises(ConnectorError, match=r"^destination postgresql .*out of range"):
        run(task, {"src": csvc, "dst": pg})
