"""What the definition checker and the copy engine share about a copy's keys."""

from __future__ import annotations

# How rows reach the destination table: added, replacing its rows, or
# inserted-or-updated by the destination's ``keys``.
DESTINATION_MODES = ("append", "replace", "upsert")
# destination.schema: what a copy does when the source's columns differ (SPEC §9).
DESTINATION_SCHEMAS = ("evolve", "freeze", "discard")

# Rows per batch (and per committed range of a resumable copy) when a copy
# task does not say.
DEFAULT_BATCH_SIZE = 50_000


def incremental_mode_problem(mode: str, keys: list[str]) -> str | None:
    """Why an incremental copy cannot write with ``mode`` and ``keys`` (None: it can).

    An incremental copy reads ``column >= watermark - lookback``: the rows at
    the watermark (and in the lookback window) come again on the next run,
    so the destination must take a row twice harmlessly: ``upsert`` updates
    it, ``append`` with ``keys`` skips it. ``replace`` would drop the rows of
    earlier runs; ``append`` without keys would add the same rows twice.
    """
    if mode == "replace":
        return (
            "an incremental copy cannot replace the destination (it would drop the rows"
            " of earlier runs): use mode upsert, or append with keys"
        )
    if mode == "append" and not keys:
        return (
            "an incremental copy with mode append needs destination keys: rows read again"
            " at the watermark are skipped when their keys are already in the destination"
        )
    return None
