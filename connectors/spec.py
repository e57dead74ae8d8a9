"""The vocabulary of a copy's destination, shared by the definition checker and the copy engine."""

from __future__ import annotations

# How rows reach the destination table: added, replacing its rows, or
# inserted-or-updated by the destination's ``keys``.
DESTINATION_MODES = ("append", "replace", "upsert")
