"""Copies from a REST API (a real local server, tests/rest_api.py) into PostgreSQL and SQLite.

SPEC §8: the four pagination styles, the records path, inferred types, 429
and 5xx on the way, incremental, transformations and destination modes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.copy import CopyFailed
from connectors.http import HttpConnector
from pipelines.definition import validate
from pipelines.tasktypes.base import TaskCancelled
from tests.connectors.conftest import FakeContext, copy_task, run
from tests.pipelines.definition_examples import copy_task as definition_copy_task
from tests.pipelines.definition_examples import pipeline, problems
from tests.rest_api import PAGE, RestApi, sample

STYLES = {
    "page": ({"path": "/items", "paginate": {"type": "page", "param": "page", "start": 1}}),
    "offset": {
        "path": "/offset",
        "records": "data",
        "paginate": {"type": "offset", "param": "offset", "limit_param": "limit", "limit": 100},
    },
    "cursor": {
        "path": "/cursor",
        "records": "data",
        "paginate": {"type": "cursor", "param": "cursor", "path": "meta.next_cursor"},
    },
    "next_link": {
        "path": "/next",
        "records": "data",
        "paginate": {"type": "next_link", "path": "links.next"},
    },
}


@pytest.fixture(autouse=True)
def allow_loopback(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def api() -> Iterator[RestApi]:
    with RestApi(sample(8)) as server:
        yield server


@pytest.fixture
def rest(api: RestApi) -> HttpConnector:
    return HttpConnector(
        name="shop_api",
        config={"base_url": api.base_url, "headers": {"X-Api-Key": "key-42"}},
    )


def task(source: dict[str, Any], **destination: Any) -> dict[str, Any]:
    extra = {k: destination.pop(k) for k in ("incremental", "transformations") if k in destination}
    return copy_task("api", "dst", source, {"table": "items", **destination}, **extra)


@pytest.mark.parametrize("style", list(STYLES))
def test_every_pagination_style_copies_every_record_into_sqlite(
    style: str, api: RestApi, rest: HttpConnector, lite: Any
) -> None:
    ctx = run(task(STYLES[style]), {"api": rest, "dst": lite})
    assert ctx.metrics["rows_written"] == 8
    rows = lite.query("SELECT id, name, price, active, note FROM items ORDER BY id")[1]
    assert [r[0] for r in rows] == list(range(1, 9))
    assert rows[2] == (3, "item 3", 3.5, 0, "third 3")
    assert rows[3][4] is None  # a key only some records have
    # Every page was asked for once, and the last (empty or without a next) ended it.
    pages = 8 // PAGE + 1
    assert len(api.requests) == pages + (1 if style in ("page", "offset") else 0)
    assert all(r["headers"]["X-Api-Key"] == "key-42" for r in api.requests)


def test_types_are_inferred_and_the_nested_records_path_is_followed(
    rest: HttpConnector, pg2: Any
) -> None:
    run(task({"path": "/nested", "records": "result.items"}), {"api": rest, "dst": pg2})
    types = dict(
        pg2.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'items'"
        )[1]
    )
    assert types == {
        "id": "bigint",
        "name": "text",
        "price": "double precision",
        "active": "boolean",
        "tags": "jsonb",
        "meta": "jsonb",
        "updated_at": "text",
        "note": "text",
    }
    row = pg2.query("SELECT id, price, active, tags, meta FROM items WHERE id = 2")[1][0]
    assert row == (2, 2.5, True, ["a", "t2"], {"rank": 2})


def test_a_mixed_column_is_text_and_big_integers_are_numeric(
    api: RestApi, rest: HttpConnector, pg2: Any
) -> None:
    api.records = [
        {"id": 1, "v": 1, "n": 2**70, "x": 1},
        {"id": 2, "v": "two", "n": 3, "x": 2.5},
        {"id": 3, "v": {"k": True}, "n": None, "x": None},
    ]
    run(task({"path": "/all"}), {"api": rest, "dst": pg2})
    rows = pg2.query("SELECT id, v, n, x FROM items ORDER BY id")[1]
    assert [r[1] for r in rows] == ["1", "two", '{"k": true}']
    assert rows[0][2] == 2**70 and rows[2][2] is None
    assert [r[3] for r in rows] == [1.0, 2.5, None]


def test_throttling_and_failures_on_the_way_are_waited_out(
    api: RestApi, rest: HttpConnector, lite: Any
) -> None:
    api.failures["/api/cursor"] = [429, 500]
    ctx = run(task(STYLES["cursor"]), {"api": rest, "dst": lite})
    assert ctx.metrics["rows_written"] == 8
    assert lite.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM items")[1] == [(8, 8)]
    assert [m for _, m in ctx.logs if "retrying" in m] == [
        "http 127.0.0.1: HTTP 429; retrying in 1.0 s",
        "http 127.0.0.1: HTTP 500; retrying in 2.0 s",
    ]


def test_incremental_reads_from_the_watermark_inclusive(
    api: RestApi, rest: HttpConnector, pg2: Any
) -> None:
    store: dict[str, Any] = {}
    t = task(STYLES["next_link"], mode="upsert", keys=["id"], incremental={"column": "id"})
    run(t, {"api": rest, "dst": pg2}, store=store)
    assert store[("watermark", "copy_t")] == 8
    # A record at the watermark changed, one is new, an older one changed too (not read again).
    api.records[7]["name"] = "eight, changed"
    api.records[0]["name"] = "one, changed"
    api.records.append(sample(1, start=9)[0])
    ctx = run(t, {"api": rest, "dst": pg2}, store=store)
    assert ctx.metrics["rows_read"] == 9
    assert ctx.metrics["rows_written"] == 2  # ids 8 and 9
    names = dict(pg2.query("SELECT id, name FROM items")[1])
    assert names[8] == "eight, changed" and names[9] == "item 9" and names[1] == "item 1"
    assert store[("watermark", "copy_t")] == 9


def test_incremental_lookback_on_a_number(api: RestApi, rest: HttpConnector, lite: Any) -> None:
    store: dict[str, Any] = {("watermark", "copy_t"): 6}
    t = task(
        {"path": "/all"},
        mode="append",
        keys=["id"],
        incremental={"column": "id", "lookback": 2},
    )
    ctx = run(t, {"api": rest, "dst": lite}, store=store)
    assert ctx.metrics["rows_written"] == 5  # ids 4..8: 6 - 2 and up, inclusive
    assert [r[0] for r in lite.query("SELECT id FROM items ORDER BY id")[1]] == [4, 5, 6, 7, 8]


def test_transformations_and_params_apply(api: RestApi, rest: HttpConnector, pg2: Any) -> None:
    t = task(
        {"path": "/all", "params": {"status": "paid", "since": {"param": "since"}, "ids": [1, 2]}},
        mode="replace",
        transformations=[
            {"function": "filter", "params": {"where": [["active", "=", True]]}},
            {"function": "select", "params": {"columns": ["id", "name"]}},
            {"function": "rename", "params": {"mapping": {"name": "title"}}},
        ],
    )
    run(t, {"api": rest, "dst": pg2}, params={"since": "2026-03-01"})
    assert pg2.query("SELECT id, title FROM items ORDER BY id")[1] == [
        (2, "item 2"),
        (4, "item 4"),
        (6, "item 6"),
        (8, "item 8"),
    ]
    assert api.requests[-1]["query"] == {"status": "paid", "since": "2026-03-01", "ids": "2"}
    # replace again: the table holds the new answer only.
    api.records = sample(2, start=100)
    run(t, {"api": rest, "dst": pg2}, params={"since": "2026-03-02"})
    assert pg2.query("SELECT id FROM items")[1] == [(100,)]


def test_a_cancel_between_pages_writes_nothing(api: RestApi, rest: HttpConnector, pg2: Any) -> None:
    # Checks: before each request and after each page; the 4th is after page 2.
    with pytest.raises(TaskCancelled):
        run(task(STYLES["page"]), {"api": rest, "dst": pg2}, cancel_after_checks=4)
    assert len(api.requests) == 2
    assert pg2.query("SELECT to_regclass('items')")[1] == [(None,)]


def test_a_refused_host_fails_the_copy(
    settings: Any, rest: HttpConnector, lite: Any, api: RestApi
) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = []
    with pytest.raises(ConnectorError, match="loopback: http targets must be public"):
        run(task({"path": "/all"}), {"api": rest, "dst": lite})
    assert api.requests == []


def test_a_page_without_the_records_list_is_named(rest: HttpConnector, lite: Any) -> None:
    with pytest.raises(CopyFailed, match="GET /api/nested page 1: no list of records at 'data'"):
        run(task({"path": "/nested", "records": "data"}), {"api": rest, "dst": lite})
    with pytest.raises(CopyFailed, match="as the body"):
        run(task({"path": "/nested"}), {"api": rest, "dst": lite})


def test_a_table_on_an_http_source_is_refused(rest: HttpConnector, lite: Any) -> None:
    with pytest.raises(CopyFailed, match="http sources take a path"):
        run(task({"table": "items"}), {"api": rest, "dst": lite})


def test_no_records_writes_nothing(api: RestApi, rest: HttpConnector, lite: Any) -> None:
    api.records = []
    ctx = run(task({"path": "/all"}), {"api": rest, "dst": lite})
    assert ctx.metrics["rows_written"] == 0


def test_spooled_records_are_read_back_in_batches(
    api: RestApi, rest: HttpConnector, lite: Any
) -> None:
    api.records = sample(40)
    ctx = FakeContext(task({"path": "/all"}, batch_size=7), {"api": rest, "dst": lite})
    from pipelines.tasktypes.copy import CopyTask

    CopyTask().run(ctx)
    assert lite.query("SELECT COUNT(*) FROM items")[1] == [(40,)]


# ------------------------------------------------------- checked at save


def _problems(source: dict[str, Any]) -> list[str]:
    return problems(pipeline(definition_copy_task(source={"connection": "api", **source})))


def test_a_valid_http_source_is_kept_as_written() -> None:
    source = {
        "connection": "api",
        "path": "/v1/orders",
        "params": {"status": "paid", "page[size]": 50, "ids": [1, 2], "since": {"param": "ds"}},
        "records": "data.items",
        "paginate": {"type": "offset", "param": "offset", "limit_param": "limit", "limit": 100},
    }
    data = pipeline(definition_copy_task(source=source))
    data["parameters"] = {"ds": "2026-01-01"}
    normalized, found = validate(data)
    assert found == [], found
    assert normalized is not None
    assert normalized["tasks"][0]["source"] == source


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            {"path": "https://evil.example/x"},
            "tasks[0].source.path: must be a path under the connection's base URL, not a URL",
        ),
        ({"path": "/a/../b"}, "tasks[0].source.path: must not contain '..'"),
        ({"path": "/a?x=1"}, "tasks[0].source.path: must not hold a query: give it as params"),
        (
            {"path": "/a", "table": "t"},
            "tasks[0].source.path: is for http sources: give a path or a table or query, not both",
        ),
        (
            {"table": "t", "records": "data"},
            "tasks[0].source.records: is for http sources (with a path), not with a table or query",
        ),
        (
            {"path": "/a", "paginate": {"type": "pages"}},
            "tasks[0].source.paginate.type: unknown pagination type 'pages' (did you mean 'page'?)",
        ),
        (
            {"path": "/a", "paginate": {"type": "cursor", "param": "c"}},
            "tasks[0].source.paginate.path: missing required key 'path'",
        ),
        (
            {"path": "/a", "paginate": {"type": "offset", "param": "o", "limit_param": "l"}},
            "tasks[0].source.paginate.limit: missing required key 'limit'",
        ),
        (
            {"path": "/a", "records": "data..x"},
            "tasks[0].source.records: must be a dotted path such as data or meta.next_cursor",
        ),
        (
            {"path": "/a", "params": {"since": {"param": "nope"}}},
            "tasks[0].source.params.since.param: unknown parameter 'nope'",
        ),
        (
            {"path": "/a", "params": {"x": [{"a": 1}]}},
            "tasks[0].source.params.x: expected a literal, a list, {param: name}"
            " or {output: [task, key]}, got list",
        ),
    ],
)
def test_a_wrong_http_source_is_refused_with_its_path(
    source: dict[str, Any], expected: str
) -> None:
    assert _problems(source) == [expected]


class StoppableContext(FakeContext):
    """A run whose cancel arrives from another thread (as the engine's watchdog sees it)."""

    stopped = False

    def check(self) -> None:
        super().check()
        if self.stopped:
            raise TaskCancelled("cancelled")


def test_a_cancel_ends_a_request_in_flight(api: RestApi, rest: HttpConnector, lite: Any) -> None:
    ctx = StoppableContext(task({"path": "/slow"}), {"api": rest, "dst": lite})

    def stop() -> None:
        ctx.stopped = True

    timer = threading.Timer(0.3, stop)
    timer.start()
    from pipelines.tasktypes.copy import CopyTask

    with pytest.raises(TaskCancelled):
        CopyTask().run(ctx)
    timer.join()
    # The copy ended while the server was still working on its answer.
    assert not api.slow_answered.is_set()
    assert api.paths() == ["/api/slow"]
