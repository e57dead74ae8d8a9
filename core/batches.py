"""Work done in bounded batches until none is left or time is up."""

from __future__ import annotations

import time
from collections.abc import Callable


def run_batches(step: Callable[[], int], *, batch_size: int, deadline: float | None) -> bool:
    """Call ``step`` until a batch comes back short; False when ``deadline`` stopped it first.

    ``step`` does one batch of at most ``batch_size`` items (in its own
    transaction) and returns how many it took. ``deadline`` is a
    ``time.monotonic()`` value, checked between batches: a batch is never
    cut in the middle.
    """
    while True:
        if step() < batch_size:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
