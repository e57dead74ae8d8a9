"""Executions as the API answers them, and a finished execution's answer stored once.

An execution's answer (``GET /executions/{id}``, an item of ``GET
/executions``) no longer changes once the execution and all its task runs
have finished: a rerun is a new execution, the admin is read-only. Two
names in it are read through joins and can change — the pipeline's (a
pipeline can be renamed) and its creator's — so they are never stored but
added when the answer is read.

Answers are kept in a table of their own (``ExecutionAnswer``). The
workers' maintenance stores the answers of runs as they finish
(``answers_store``, a slice per pass, going on from the last stored
answer's end); ``manage.py answers`` stores a whole history (after an
upgrade). Reads (``answers``, ``stored``) put a stored answer into the
response as it is (``core.renderers.Rendered``) instead of reading its
task runs and rendering them again, and render live whatever has none yet.
At a million executions that was most of a list's cost (bench/RESULTS.md
"API").

A stored answer starts with a line naming its format and the time zone its
times were written in. One whose line differs — written by a release
whose answer had other fields, or before TIME_ZONE changed — is rendered
live; ``manage.py answers --reset`` stores them all again. A release that
changes the answer's fields raises ``ANSWER_FORMAT``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import orjson
from django.db.models import Max
from django.utils import timezone

from core.batches import run_batches
from core.renderers import Rendered, dumps
from pipelines.api_assets import triggered_by_data
from pipelines.models import (
    EXECUTION_FINISHED,
    TASK_FINISHED,
    Execution,
    ExecutionAnswer,
    Trigger,
)
from pipelines.serializers import execution_data, execution_rows, task_run_rows

logger = logging.getLogger(__name__)

ANSWER_FORMAT = "1"
# Read through joins at every read, never stored: answer key -> values() key.
_JOINED = {"pipeline_name": "pipeline__name", "created_by": "created_by__username"}
# What a list reads of each row: its position in the list, the joined
# names and the stored answer (the rest only for rows that have none).
LIST_VALUES = ("execution_id", "created_at", *_JOINED.values(), "answer__text")
# Executions a maintenance batch renders and stores (one insert).
BATCH_SIZE = 200
# How far before the last stored answer's end maintenance looks again.
OVERLAP = timedelta(minutes=1)


def _header() -> str:
    return f"{ANSWER_FORMAT} {timezone.get_current_timezone_name()}\n"


def rendered(rows: list[dict[str, Any]], task_runs: Any = None) -> list[dict[str, Any]]:
    """``execution_rows`` rows as the API answers them, with their task runs (one
    query for all; ``task_runs``: their ``task_run_values`` rows, already read)."""
    runs = task_run_rows([row["execution_id"] for row in rows], task_runs)
    # Only asset-triggered runs consumed events: no query for the others.
    asset_runs = [row["execution_id"] for row in rows if row["trigger"] == Trigger.ASSET]
    consumed = triggered_by_data(asset_runs) if asset_runs else {}
    return [
        {**execution_data(row, runs[pk]), "triggered_by": consumed.get(pk, [])}
        for row in rows
        for pk in [row["execution_id"]]
    ]


def stored(row: dict[str, Any], header: str | None = None) -> Rendered | None:
    """The row's stored answer with its joined names added; None when it has none
    of this format and time zone. ``row``: values with ``LIST_VALUES``'s
    ``answer__text`` and joined names."""
    text = row.get("answer__text")
    header = header or _header()
    if not text or not text.startswith(header):
        return None
    names = b"".join(
        b'"' + key.encode() + b'":' + orjson.dumps(row[path]) + b","
        for key, path in _JOINED.items()
    )
    return Rendered(b"{" + names + text[len(header) + 1 :].encode())


def answers(rows: list[dict[str, Any]]) -> list[Rendered | dict[str, Any]]:
    """The answers of a page of ``LIST_VALUES`` rows, in their order: stored
    ones as they are, the others rendered (one query for their rows, one for
    their task runs)."""
    header = _header()
    out: list[Rendered | dict[str, Any] | None] = [stored(row, header) for row in rows]
    missing = [row["execution_id"] for row, answer in zip(rows, out, strict=True) if answer is None]
    if missing:
        live = {
            data["execution_id"]: data
            for data in rendered(list(execution_rows(Execution.objects.filter(pk__in=missing))))
        }
        out = [
            answer if answer is not None else live[str(row["execution_id"])]
            for row, answer in zip(rows, out, strict=True)
        ]
    return out  # type: ignore[return-value]


def _storable(data: dict[str, Any]) -> bool:
    return data["status"] in EXECUTION_FINISHED and all(
        task["status"] in TASK_FINISHED for task in data["tasks"]
    )


def _text(data: dict[str, Any], header: str) -> str | None:
    body = {key: value for key, value in data.items() if key not in _JOINED}
    try:
        return header + dumps(body).decode()
    except TypeError:
        # orjson cannot write it (an integer past 64 bits in an output):
        # it is rendered at every read instead.
        logger.info(
            "answer of execution %s not stored: not JSON orjson writes", data["execution_id"]
        )
        return None


def answers_store_batch(ids: Iterable[Any]) -> int:
    """Render and store the answers of these executions that can no longer
    change and have none; the number stored. One query for the rows, one for
    the task runs, one insert."""
    header = _header()
    ids = list(ids)
    if not ids:
        return 0
    rows = list(execution_rows(Execution.objects.filter(pk__in=ids)))
    answers = [
        ExecutionAnswer(execution_id=row["execution_id"], ended_at=row["ended_at"], text=text)
        for row, data in zip(rows, rendered(rows), strict=True)
        if row["ended_at"] is not None and _storable(data)
        for text in [_text(data, header)]
        if text is not None
    ]
    # The command and the maintenance may store the same one at once.
    ExecutionAnswer.objects.bulk_create(answers, ignore_conflicts=True)
    return len(answers)


def answers_store(*, deadline: float | None = None, history: bool = False) -> tuple[int, bool]:
    """Store the answers of finished executions that have none, in order of
    their end, in batches of ``BATCH_SIZE``, until none is left or
    ``deadline`` (``time.monotonic()``) passes: ``(stored, complete)``.

    From where the stored answers end (the last one's ``ended_at``, less
    ``OVERLAP``: a run that ended just before it may have committed just
    after), or with ``history`` (and when none is stored yet) from the
    oldest run: what ended before the stored ones is left to the command.
    """
    stored_count = 0
    since = None
    if not history:
        last = ExecutionAnswer.objects.aggregate(last=Max("ended_at"))["last"]
        since = last - OVERLAP if last is not None else None
    after: list[Any] = []  # the (ended_at, pk) of the last run looked at

    def step() -> int:
        nonlocal stored_count
        # The next runs by end, those with an answer left out afterwards (by
        # key): an anti-join here may be planned as a scan of both tables.
        ended = Execution.objects.filter(status__in=EXECUTION_FINISHED, ended_at__isnull=False)
        if after:
            ended = ended.filter(ended_at__gte=after[0]).exclude(
                ended_at=after[0], pk__lte=after[1]
            )
        elif since is not None:
            ended = ended.filter(ended_at__gte=since)
        batch = list(ended.order_by("ended_at", "pk").values_list("ended_at", "pk")[:BATCH_SIZE])
        if batch:
            after[:] = batch[-1]
            ids = [pk for _, pk in batch]
            have = set(ExecutionAnswer.objects.filter(pk__in=ids).values_list("pk", flat=True))
            stored_count += answers_store_batch(pk for pk in ids if pk not in have)
        return len(batch)

    complete = run_batches(step, batch_size=BATCH_SIZE, deadline=deadline)
    return stored_count, complete


def maintenance_answers(seconds: float) -> int:
    """One maintenance pass's slice: answers stored for at most ``seconds``."""
    return answers_store(deadline=time.monotonic() + seconds)[0]


def answers_reset() -> int:
    """Forget every stored answer (in batches), so that they are stored again."""
    forgotten = 0

    def step() -> int:
        nonlocal forgotten
        ids = list(ExecutionAnswer.objects.values_list("pk", flat=True)[:1000])
        forgotten += ExecutionAnswer.objects.filter(pk__in=ids).delete()[0]
        return len(ids)

    run_batches(step, batch_size=1000, deadline=None)
    return forgotten
