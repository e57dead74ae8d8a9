"""Reads that overlap writes: a source's batches fetched by a thread, a bounded queue between.

While the destination takes in a batch (its server parsing rows, the
socket waiting), the reader thread already fetches and decodes the next
ones. At most ``depth`` batches wait in the queue, so memory stays bounded.
The source connection is only ever used by the reader thread while the
batches flow; closing the iterator (``contextlib.closing``) stops the reader
and waits for it, so the connection is free again before anything else
(a rollback, the connection's release) touches it. The caller's thread keeps
running the copy's checks (cancellation, the lease), and the worker's
heartbeat thread is not involved at all.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

_DONE = object()


def prefetched(
    batches: Iterator[list[tuple]], depth: int = 2
) -> Generator[list[tuple], None, None]:
    """``batches``, read ahead by a thread; its errors are raised here, in order."""
    waiting: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed over to the consumer
            put(exc)
        else:
            put(_DONE)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                try:
                    close()  # in this thread: the cursor belongs to it
                except Exception:  # noqa: BLE001 - the consumer already has the error  # nosec B110
                    pass

    reader = threading.Thread(target=read, name="copy-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
