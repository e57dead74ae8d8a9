"""core.logging: the ids a log line carries, and the JSON line itself.

How a worker binds a task's ids (``ops.metrics``' django-q2 receivers) is
tested in ``tests/ops/test_logging.py``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from core import logging as log_context
from core.logging import JsonFormatter


@pytest.fixture(autouse=True)
def nothing_bound() -> Iterator[None]:
    log_context.unbind()
    yield
    log_context.unbind()


def record(message: str = "hello %s", *args: Any, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("core.test", logging.INFO, __file__, 1, message, args or ("x",), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_it_binds_process_ids_until_unbound_dropping_none() -> None:
    log_context.bind(execution_id=7, task_id=None, pipeline="p1")
    assert log_context.current() == {"execution_id": "7", "pipeline": "p1"}
    log_context.bind(task_id="t-2")  # a new task replaces the ids of the last one
    assert log_context.current() == {"task_id": "t-2"}
    log_context.unbind()
    assert log_context.current() == {}


def test_its_process_ids_reach_other_threads() -> None:
    log_context.bind(execution_id="e-1")
    seen: list[dict[str, str]] = []
    thread = threading.Thread(target=lambda: seen.append(log_context.current()))
    thread.start()
    thread.join()
    assert seen == [{"execution_id": "e-1"}]


def test_a_bound_block_wins_over_the_process_ids_and_ends_with_the_block() -> None:
    log_context.bind(execution_id="e-1", task_id="t-1")
    with log_context.bound(task_id="t-9", attempt=2):
        assert log_context.current() == {"execution_id": "e-1", "task_id": "t-9", "attempt": "2"}
        with log_context.bound(task_id="t-10"):
            assert log_context.current()["task_id"] == "t-10"
        assert log_context.current()["task_id"] == "t-9"
    assert log_context.current() == {"execution_id": "e-1", "task_id": "t-1"}


def test_a_bound_block_stays_in_its_own_thread() -> None:
    seen: list[dict[str, str]] = []
    with log_context.bound(execution_id="e-1"):
        thread = threading.Thread(target=lambda: seen.append(log_context.current()))
        thread.start()
        thread.join()
    assert seen == [{}]


def test_it_formats_one_json_object_with_the_ids_the_call_or_the_context_give() -> None:
    log_context.bind(execution_id="bound-e", task_name="t1")
    line = json.loads(JsonFormatter().format(record(execution_id="call-e", task_id=3)))
    assert line["message"] == "hello x"
    assert (line["level"], line["logger"]) == ("INFO", "core.test")
    assert line["ts"].endswith("+00:00")
    # An id passed with the call wins over the bound one; the others fill in.
    assert (line["execution_id"], line["task_id"], line["task_name"]) == ("call-e", "3", "t1")
    assert "pipeline" not in line and "attempt" not in line and "exc" not in line


def test_it_formats_the_exception_on_the_same_line() -> None:
    try:
        raise ValueError("nope")
    except ValueError:
        rec = record()
        rec.exc_info = sys.exc_info()
    text = JsonFormatter().format(rec)
    assert "\n" not in text
    assert json.loads(text)["exc"].endswith("ValueError: nope")


def test_it_says_whether_the_console_writes_json(settings: Any) -> None:
    console = {"class": "logging.StreamHandler"}
    settings.LOGGING = {"version": 1, "handlers": {"console": {**console, "formatter": "json"}}}
    assert log_context.json_enabled() is True
    settings.LOGGING = {"version": 1, "handlers": {"console": {**console, "formatter": "plain"}}}
    assert log_context.json_enabled() is False
    settings.LOGGING = {"version": 1}
    assert log_context.json_enabled() is False
