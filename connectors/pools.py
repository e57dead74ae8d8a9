"""Connection pools per worker process and connection settings.

PostgreSQL uses ``psycopg_pool.ConnectionPool``. MySQL uses ``QueuePool``
below: the pools published for PyMySQL (pymysql-pool, DBUtils) either make
their own connections (which would skip ``SafeConnection`` and the socket to
the checked address, and reconnect by resolving the host again), name pools
after host, user and database, or have no wait timeout and no statistics;
DBUtils also re-runs a failed statement on a new connection, outside the
transaction it belonged to.

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
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from psycopg_pool import ConnectionPool

# Connections one pool may hold in one worker process, even when the user's
# options ask for more: a connection test or a task must not be able to open
# hundreds of connections to a server.
MAX_POOL_SIZE = 10
POOL_OPTIONS = {"pool_min_size": 1, "pool_max_size": 8}

C = TypeVar("C")

_lock = threading.Lock()
_pools: dict[str, Any] = {}
# Errors of pools discarded in this process, per pool name: the errors
# counter of a connection must not go down because its pool was replaced.
_retired_errors: dict[str, int] = {}
_names: dict[str, str] = {}
_pid = os.getpid()
# Keys an unlabelled pool's name: a plain hash of its settings could be
# guessed back to the user, host and database names (SPEC §10: metrics never
# carry them). Per process, so the names mean nothing outside it.
_label_key = secrets.token_bytes(16)


def _cache() -> dict[str, Any]:
    global _pid
    if os.getpid() != _pid:
        # Forked: the parent's pools belong to the parent. Forget them
        # without closing (closing would touch the parent's sockets).
        _pools.clear()
        _names.clear()
        _retired_errors.clear()
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

    def make(name: str) -> ConnectionPool:
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
        return pool

    pool: ConnectionPool = _cached(pool_key(kwargs, (min_size, max_size)), label, make)
    return pool


def _cached(key: str, label: str | None, make: Callable[[str], Any]) -> Any:
    """This process's pool under ``key``, made by ``make(name)`` on first use."""
    name = pool_label(label, key)
    with _lock:
        pools = _cache()
        pool = pools.get(key)
        if pool is None:
            pool = make(name)
            pools[key] = pool
            _names[key] = name
        return pool


def get_queue_pool(
    *,
    label: str | None,
    key_material: dict[str, Any],
    connect: Callable[[], C],
    check: Callable[[C], None],
    min_size: int,
    max_size: int,
    timeout: float,
) -> QueuePool[C]:
    """The ``QueuePool`` for these settings (``key_material``), made on first use here.

    ``connect`` and ``check`` are kept from the first call for these
    settings; ``label`` names the pool in metrics as in ``get_pool``.
    """

    def make(name: str) -> QueuePool[C]:
        return QueuePool(
            name=name,
            connect=connect,
            check=check,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
        )

    pool: QueuePool[C] = _cached(pool_key(key_material, (min_size, max_size)), label, make)
    return pool


def discard(pool: ConnectionPool | QueuePool[Any]) -> None:
    """Close and forget a pool (its settings do not work)."""
    with _lock:
        pools = _cache()
        for key, candidate in list(pools.items()):
            if candidate is pool:
                del pools[key]
                name = _names.pop(key, pool.name)
                _retired_errors[name] = _retired_errors.get(name, 0) + _pool_stats(pool)["errors"]
    pool.close(timeout=0)


def _pool_stats(pool: ConnectionPool | QueuePool[Any]) -> dict[str, int]:
    """``{size, in_use, waiting, errors}`` of one pool of either kind."""
    if isinstance(pool, QueuePool):
        return pool.stats()
    s = pool.get_stats()
    size = int(s.get("pool_size", 0))
    return {
        "size": size,
        "in_use": size - int(s.get("pool_available", 0)),
        "waiting": int(s.get("requests_waiting", 0)),
        # Failed connects, connections found broken (checked out or given
        # back), requests that timed out: what QueuePool counts as errors.
        "errors": sum(
            int(s.get(k, 0))
            for k in ("connections_errors", "connections_lost", "returns_bad", "requests_errors")
        ),
    }


def stats() -> list[dict[str, Any]]:
    """Per pool name in this process: ``{name, size, in_use, waiting, errors}`` for metrics.

    A connection whose settings changed may still have its old pool here:
    both count under the connection's one name. ``errors`` only grows
    while the process lives (a discarded pool's errors stay counted).
    """
    with _lock:
        items = list(_cache().items())
        retired = dict(_retired_errors)
    totals: dict[str, dict[str, Any]] = {
        name: {"name": name, "size": 0, "in_use": 0, "waiting": 0, "errors": errors}
        for name, errors in retired.items()
    }
    for key, pool in items:
        name = _names.get(key, pool.name)
        entry = totals.setdefault(
            name, {"name": name, "size": 0, "in_use": 0, "waiting": 0, "errors": 0}
        )
        for stat, value in _pool_stats(pool).items():
            entry[stat] += value
    return list(totals.values())


def close_all() -> None:
    """Close every pool of this process (tests, worker shutdown)."""
    with _lock:
        pools = list(_cache().values())
        _pools.clear()
        _names.clear()
        _retired_errors.clear()
    for pool in pools:
        pool.close(timeout=1)


def pool_size_problems(options: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with ``pool_min_size`` / ``pool_max_size`` (integers 1-MAX_POOL_SIZE)."""
    problems = []
    for key in POOL_OPTIONS:
        value = options.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_POOL_SIZE
        ):
            problems.append((key, f"must be an integer 1-{MAX_POOL_SIZE}"))
    low, high = options.get("pool_min_size"), options.get("pool_max_size")
    if not problems and isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append(("pool_min_size", "must not be larger than pool_max_size"))
    return problems


def pool_sizes(options: dict[str, Any]) -> tuple[int, int]:
    """``(min, max)`` connections of a pool: the options', capped to 1-MAX_POOL_SIZE.

    Capped here too, for a config stored before the limit (or by hand).
    """
    sizes = []
    for key, default in POOL_OPTIONS.items():
        value = options.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            value = default
        sizes.append(min(max(value, 1), MAX_POOL_SIZE))
    low, high = sizes
    return min(low, high), high


class PoolTimeout(TimeoutError):
    """No connection of a ``QueuePool`` became free within its timeout."""


class QueuePool(Generic[C]):
    """A bounded, thread-safe pool of DB-API connections made by ``connect``.

    - At most ``max_size`` connections are open (idle or lent); a request
      beyond that waits up to ``timeout`` seconds, then ``PoolTimeout``.
    - Every connection is ``check``ed before it is lent: one that died (the
      server restarted, a firewall dropped it) is closed and counted as an
      error, and the request gets another or a new one. It is never
      reconnected in place: a new connection comes from ``connect`` alone.
    - ``putconn(conn, broken=True)`` closes instead of keeping.
    - Idle connections older than ``max_idle`` (beyond ``min_size``) or any
      older than ``max_lifetime`` are closed when met, like psycopg_pool's.
    - A pool belongs to the process that made it: used after a fork it
      refuses, since its sockets are the parent's.
    """

    def __init__(
        self,
        *,
        name: str,
        connect: Callable[[], C],
        check: Callable[[C], None],
        min_size: int,
        max_size: int,
        timeout: float,
        max_idle: float = 300.0,
        max_lifetime: float = 3600.0,
    ) -> None:
        self.name = name
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.max_idle = max_idle
        self.max_lifetime = max_lifetime
        self._connect = connect
        self._check = check
        self._cond = threading.Condition()
        # (connection, opened at, idle since), most recently returned last.
        self._idle: deque[tuple[C, float, float]] = deque()
        self._opened: dict[int, float] = {}  # id(connection) -> opened at, for lent ones
        self._size = 0  # open connections, idle or lent, plus connects under way
        self._waiting = 0
        self._errors = 0
        self._closed = False
        self._pid = os.getpid()

    def stats(self) -> dict[str, int]:
        """``{size, in_use, waiting, errors}`` now (errors since the pool was made)."""
        with self._cond:
            return {
                "size": self._size,
                "in_use": self._size - len(self._idle),
                "waiting": self._waiting,
                "errors": self._errors,
            }

    def getconn(self) -> C:
        """A checked connection, waiting up to ``timeout`` for a free one."""
        deadline = time.monotonic() + self.timeout
        while True:
            taken = self._take(deadline)
            if taken is None:
                return self._open()
            conn, opened, idle_since = taken
            now = time.monotonic()
            if now - opened > self.max_lifetime or (
                now - idle_since > self.max_idle and self._size > self.min_size
            ):
                self._drop(conn)
                continue
            try:
                self._check(conn)
            except Exception:  # noqa: BLE001 - any failure means: do not lend it
                with self._cond:
                    self._errors += 1
                self._drop(conn)
                continue
            with self._cond:
                self._opened[id(conn)] = opened
            return conn

    def _take(self, deadline: float) -> tuple[C, float, float] | None:
        """An idle connection, or None with a slot reserved for a new one."""
        with self._cond:
            if os.getpid() != self._pid:
                raise RuntimeError(f"pool {self.name} belongs to process {self._pid}")
            while True:
                if self._closed:
                    raise PoolTimeout(f"pool {self.name} is closed")
                if self._idle:
                    return self._idle.pop()
                if self._size < self.max_size:
                    self._size += 1
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    self._errors += 1
                    raise PoolTimeout(f"no connection of pool {self.name} free in {self.timeout}s")
                self._waiting += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._waiting -= 1

    def _open(self) -> C:
        try:
            conn = self._connect()
        except BaseException:
            with self._cond:
                self._size -= 1
                self._errors += 1
                self._cond.notify()
            raise
        with self._cond:
            self._opened[id(conn)] = time.monotonic()
        return conn

    def putconn(self, conn: C, *, broken: bool = False) -> None:
        """Give ``conn`` back: kept for the next request, or closed when ``broken``."""
        with self._cond:
            opened = self._opened.pop(id(conn), None)
            if opened is None or os.getpid() != self._pid:
                # Not lent by this pool, or given back twice: nothing to
                # count. In a forked child: the socket is the parent's.
                return
            if not broken and not self._closed:
                self._idle.append((conn, opened, time.monotonic()))
                self._cond.notify()
                return
            if broken:
                self._errors += 1
        self._drop(conn)

    def _drop(self, conn: C) -> None:
        """Close ``conn`` and free its slot."""
        try:
            conn.close()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - already closed or broken  # nosec B110
            pass
        with self._cond:
            self._size -= 1
            self._cond.notify()

    def close(self, timeout: float = 0) -> None:
        """Close the idle connections; lent ones are closed when they come back."""
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        for conn, _, _ in idle:
            self._drop(conn)
