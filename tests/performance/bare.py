"""The same-run baseline of ``make loadtest``: the same clients on ``/healthz``.

    locust -f tests/performance/bare.py --host http://127.0.0.1:8000 --users 16 --headless

``/healthz`` answers JSON through the whole middleware stack without the
database or a login, as bench/api.py's "bare" phase: the load test's figures
are read as ratios to this one, measured on the same server, machine and
minute, so a busy machine moves both and the ratio stays comparable.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, between, task

# The think time of locustfile.py, read the same way (not imported from it:
# that would also import its login check and its client class).
WAIT_MIN, WAIT_MAX = (float(x) for x in os.environ.get("LOCUST_WAIT", "0.5,2.0").split(","))


class Bare(FastHttpUser):
    """A client that only asks whether the server is up."""

    wait_time = between(WAIT_MIN, WAIT_MAX)

    @task
    def healthz(self) -> None:
        self.client.get("/healthz", name="bare /healthz")
