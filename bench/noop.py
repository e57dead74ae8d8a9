"""Bare django-q2 functions: the baseline of bench/orchestration.py."""

from __future__ import annotations

from django.core.cache import cache
from django_q.tasks import async_task


def chain_step(key: str, left: int) -> None:
    """One link of a chain: enqueue the next, or mark the chain done."""
    if left <= 1:
        cache.set(key, "done", 3600)
        return
    async_task("bench.noop.chain_step", key, left - 1, q_options={"save": False})


def count(key: str) -> None:
    cache.incr(key)
