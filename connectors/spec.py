"""What the definition checker and the copy engine share about a copy's keys."""

from __future__ import annotations

# How rows reach the destination table: added, replacing its rows, or
# inserted-or-updated by the destination's ``keys``.
DESTINATION_MODES = ("append", "replace", "upsert")

# Rows per batch (and per committed range of a resumable copy) when a copy
# task does not say.
DEFAULT_BATCH_SIZE = 50_000
