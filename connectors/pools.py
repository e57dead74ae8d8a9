"""One ``psycopg_pool.ConnectionPool`` per worker process and connection settings.

Pools are created lazily on first use, never at import: django-q2 forks its
workers from the cluster process, and a pool (its sockets and its threads)
must never be shared across a fork. The cache remembers the pid that built
it and starts afresh in a child.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from psycopg_pool import ConnectionPool

_lock = threading.Lock()
_pools: dict[str, ConnectionPool] = {}
_names: dict[str, str] = {}
_pid = os.getpid()


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


def get_pool(
    *,
    name: str,
    kwargs: dict[str, Any],
    min_size: int,
    max_size: int,
    timeout: float,
) -> ConnectionPool:
    """The pool for these settings, opened on first use in this process."""
    key = pool_key(kwargs, (min_size, max_size))
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
    """Per pool in this process: ``{name, size, in_use, waiting}`` for metrics."""
    with _lock:
        items = list(_cache().items())
    result = []
    for key, pool in items:
        s = pool.get_stats()
        size = int(s.get("pool_size", 0))
        result.append(
            {
                "name": _names.get(key, pool.name),
                "size": size,
                "in_use": size - int(s.get("pool_available", 0)),
                "waiting": int(s.get("requests_waiting", 0)),
            }
        )
    return result


def close_all() -> None:
    """Close every pool of this process (tests, worker shutdown)."""
    with _lock:
        pools = list(_cache().values())
        _pools.clear()
        _names.clear()
    for pool in pools:
        pool.close(timeout=1)
