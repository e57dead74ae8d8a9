"""Per-execution, per-task progress in the cache (Redis in production).

Keys are ``checkpoint:{execution_id}:{task_id}`` with a 24 h TTL. A copy
saves ``{unit, batch, rows}`` after each batch it commits and
``{unit, committed, rows_written}`` when its unit is done. The destination's
own markers stay the source of truth for exactly-once and for where a
resumed copy continues (``connectors.copy``): the cache may lose a key, or a
worker may die between its commit and its save, so a checkpoint is compared
with the marker in the resumed attempt's log, never trusted over it. It
holds counts only, no row values.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache


def key(execution_id: str, task_id: str) -> str:
    return f"checkpoint:{execution_id}:{task_id}"


def save(execution_id: str, task_id: str, state: dict[str, Any]) -> None:
    cache.set(key(execution_id, task_id), state, timeout=settings.CHECKPOINT_TTL_SECONDS)


def load(execution_id: str, task_id: str) -> dict[str, Any] | None:
    value = cache.get(key(execution_id, task_id))
    return value if isinstance(value, dict) else None


def clear(execution_id: str, task_id: str) -> None:
    cache.delete(key(execution_id, task_id))
