"""The copy engine: source → transformations → destination, exactly once.

One run of ``run_copy`` copies one *unit*: the whole copy, or chunk ``i`` of
``n`` of a partitioned copy. A unit's rows and its completion marker (a row
in ``_datadog_copy_markers`` in the destination database, or a sidecar file
next to a CSV/JSONL destination) commit together in one destination
transaction, so a retried attempt either finds the marker and skips the unit
or finds nothing and redoes it: never a duplicate, never a gap.

Modules, each importing only those above it: ``spec`` (the unit and its
``CopySpec``), ``values`` (parsing, JSON), ``partitions`` (chunk ranges),
``markers``, ``query``, ``sink`` (the destination interface), ``sql_sink``
and ``file_sink``, ``resume`` (key ranges of a resumable copy),
``sql_source``, ``file_source`` and ``http_source`` (the ways of reading;
an http source spools its pages and shares the file sources' batch path), ``engine``
(``run_copy``, ``discard_stage``). What differs between SQL kinds is asked
of their dialect (``connectors/<kind>/dialect.py``), never tested by kind.
"""

from connectors.copy.engine import discard_stage, run_copy
from connectors.copy.spec import CopyFailed

__all__ = ["CopyFailed", "discard_stage", "run_copy"]
