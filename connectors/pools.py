"""One ``psycopg_pool.ConnectionPool`` per worker process and connection settings.

Pools are created lazily on first use, never at import: django-q2 forks its
workers from the cluster process, and a pool (its sockets and its threads)
must never be shared across a fork. The cache remembers the pid that built
it and starts afresh in a child.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from typing import Any

from psycopg_pool import ConnectionPool

_lock = threading.Lock()
_pools: dict[str, ConnectionPool] = {}
_names: dict[str, str] = {}
_pid = os.getpid()
# Keys an unlabelled pool's name: a plain hash of its settings could be
# guessed back to the user, host and database names (SPEC §10: metrics never
# carry them). Per process, so the names mean nothing outside it.
_label_key = secrets.token_bytes(16)


def _cache() -> dict[str, ConnectionPool]:
    global _pid
    if os.getpid() != _pid:
        # Forked: the parent's pools belong to the parent. Forget them
        # without closing (closing would touch the parent's sockets).
        _pools.clear()
        _names.clear()
        _pid = os.getpid()
    return _pools


def pool_key(kwargs: dict[str, Any], sizes: tuple[int, int]) -> str:
    """A key for connection settings; the password enters only as a hash."""
    material = repr(sorted((k, str(v)) for k, v in kwargs.items())) + repr(sizes)
    return hashlib.sha256(material.encode()).hexdigest()


def pool_label(label: str | None, key: str) -> str:
    """What metrics and logs call a pool: the connection id, or an opaque name.

    Never the user, host, database or password of its settings.
    """
    if label:
        return label
    return "pool-" + hmac.new(_label_key, key.encode(), hashlib.sha256).hexdigest()[:12]


def get_pool(
    *,
    label: str | None,
    kwargs: dict[str, Any],
    min_size: int,
    max_size: int,
    timeout: float,
) -> ConnectionPool:
    """The pool for these settings, opened on first use in this process.

    ``label`` is the connection's id (None for a connector made without a
    stored connection); it names the pool in metrics.
    """
    key = pool_key(kwargs, (min_size, max_size))
    name = pool_label(label, key)
    with _lock:
        pools = _cache()
        pool = pools.get(key)
        if pool is None:
            pool = ConnectionPool(
                kwargs=kwargs,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                name=name,
                open=False,
                # A database restart must not leave dead sockets in the pool.
                check=ConnectionPool.check_connection,
                max_idle=300.0,
            )
            pool.open(wait=False)
            pools[key] = pool
            _names[key] = name
        return pool


def discard(pool: ConnectionPool) -> None:
    """Close and forget a pool (its settings do not work)."""
    with _lock:
        pools = _cache()
        for key, candidate in list(pools.items()):
            if candidate is pool:
                del pools[key]
                _names.pop(key, None)
    pool.close(timeout=0)


def stats() -> list[dict[str, Any]]:
    """Per pool name in this process: ``{name, size, in_use, waiting}`` for metrics.

    A connection whose settings changed may still have its old pool here:
    both count under the connection's one name.
    """
    with _lock:
        items = list(_cache().items())
    totals: dict[str, dict[str, Any]] = {}
    for key, pool in items:
        s = pool.get_stats()
        size = int(s.get("pool_size", 0))
        name = _names.get(key, pool.name)
        entry = totals.setdefault(name, {"name": name, "size": 0, "in_use": 0, "waiting": 0})
        entry["size"] += size
        entry["in_use"] += size - int(s.get("pool_available", 0))
        entry["waiting"] += int(s.get("requests_waiting", 0))
    return list(totals.values())


def close_all() -> None:
    """Close every pool of this process (tests, worker shutdown)."""
    with _lock:
        pools = list(_cache().values())
        _pools.clear()
        _names.clear()
    for pool in pools:
        pool.close(timeout=1)
