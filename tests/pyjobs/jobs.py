"""Python task functions for the tests: each does one thing a real job does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# Not a function: a definition naming it is refused.
NOT_CALLABLE = 5


def add(ctx: Any, a: int, b: int = 0) -> dict[str, Any]:
    """Return the sum (the task's output)."""
    ctx.log(f"adding {a} and {b}")
    return {"sum": a + b}


def describe(ctx: Any, **kwargs: Any) -> dict[str, Any]:
    """Return what the function was given."""
    return {
        "execution_id": ctx.execution_id,
        "task_name": ctx.task_name,
        "logical_date": ctx.logical_date.isoformat(),
        "tzinfo": ctx.logical_date.tzinfo is not None,
        "parameters": ctx.parameters,
        "kwargs": kwargs,
        "cancelled": ctx.cancelled(),
    }


def nothing(ctx: Any) -> None:
    """Return None: the output is an empty object."""


def boom(ctx: Any) -> None:
    ctx.log("about to fail")
    raise ValueError("bad row 7")


def flaky(ctx: Any, fail_times: int) -> dict[str, Any]:
    """Fail the first ``fail_times`` attempts, counting them in the checkpoint."""
    tries = (ctx.checkpoint_get() or {}).get("tries", 0) + 1
    ctx.checkpoint_set({"tries": tries})
    if tries <= fail_times:
        raise RuntimeError(f"attempt {tries} fails on purpose")
    return {"tries": tries}


def answer(ctx: Any, connection: str) -> dict[str, Any]:
    """Ask the database through ``ctx.connection``; write a row (committed when the block ends)."""
    with ctx.connection(connection) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS py_answers (n INTEGER)")
        cur.execute("INSERT INTO py_answers VALUES (42)")
        cur.execute("SELECT count(*) FROM py_answers")
        (count,) = cur.fetchone()
        cur.close()
    return {"rows": count}


def returns_list(ctx: Any) -> list[int]:
    return [1, 2]


def polite(ctx: Any, seconds: float = 60) -> dict[str, Any]:
    """Wait until told to stop (or ``seconds``), then return at once."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.cancelled():
            ctx.log("stopping as asked")
            return {"stopped": True}
        time.sleep(0.1)
    return {"stopped": False}


def stubborn(ctx: Any, marker: str, seconds: float = 120) -> dict[str, Any]:
    """Ignore every stop for ``seconds``; ``marker`` (a file) records that it was told to stop."""
    deadline = time.monotonic() + seconds
    Path(marker).write_text("started")
    told = False
    while time.monotonic() < deadline:
        if not told and ctx.cancelled():
            Path(marker).write_text("told to stop")  # once: the process may end any time after
            told = True
        time.sleep(0.1)
    return {"finished": True}


def sleep_in_database(ctx: Any, connection: str, seconds: int = 60) -> dict[str, Any]:
    """One long statement: a cancel must stop it in the database, not wait for it."""
    with ctx.connection(connection) as conn:
        cur = conn.cursor()
        cur.execute("SELECT pg_sleep(%(s)s)", {"s": seconds})
    return {"slept": seconds}
