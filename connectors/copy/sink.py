"""What every copy destination does: one transaction per unit, with its marker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from connectors.copy.spec import Unit
from connectors.types import Column


class Sink(ABC):
    """Where a unit's rows go; one destination transaction per unit."""

    columns: list[Column]
    unit: Unit
    # Batches of a staged load committed so far (see commit_batch).
    batch: int = 0
    # What destination.schema changed at begin (connectors.copy.schema_changes).
    schema_changes: list[dict[str, Any]]

    @abstractmethod
    def committed(self) -> dict[str, Any] | None:
        """The marker info when this unit already committed (finishing a pending swap)."""

    @abstractmethod
    def plan(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The partition plan of this execution: stored once, read by every chunk."""

    @abstractmethod
    def begin(
        self, columns: list[Column], *, staged: bool = False, resume: dict[str, Any] | None = None
    ) -> None:
        """Create what is missing and open the transaction.

        ``staged``: a load whose batches commit one by one (``commit_batch``)
        where readers do not see them, until ``commit`` publishes the unit.
        ``resume`` (from ``resume_point``) continues such a load.
        """

    @abstractmethod
    def resume_point(self) -> dict[str, Any] | None:
        """``{batch, rows, position, watermark}`` of the last batch a staged load committed."""

    @abstractmethod
    def commit_batch(self, rows: int, state: dict[str, Any]) -> None:
        """Commit a staged load's rows so far with a batch marker holding ``state``; go on."""

    @abstractmethod
    def discard(self) -> None:
        """Drop a staged load's stage and batch markers: no attempt will resume it."""

    @abstractmethod
    def write(self, rows: list[tuple]) -> None:
        """Add rows to the open transaction."""

    def takes_text(self) -> bool:
        """Whether ``write_text`` may be used in the open transaction (after ``begin``)."""
        return False

    def write_text(self, rows: list[tuple], types: list[str]) -> None:
        """Add a text source's rows, values as the source gave them (see ``takes_text``).

        ``types`` are the canonical types of the columns given to ``begin``.
        """
        raise NotImplementedError

    @abstractmethod
    def commit(self, rows: int, info: dict[str, Any]) -> None:
        """Commit the rows with the unit's marker, atomically."""

    @abstractmethod
    def rollback(self) -> None:
        """Undo everything since ``begin``."""
