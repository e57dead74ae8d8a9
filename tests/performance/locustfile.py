"""Load profile of API clients: login, list, detail, execute, status and cancel.

    pip install locust   # or: make install-dev (locust is a dev extra)
    LOCUST_USERNAME=admin LOCUST_PASSWORD=... \
    locust -f tests/performance/locustfile.py --host http://localhost:8000 \
        --users 32 --spawn-rate 8 --run-time 2m --headless

``make loadtest`` (bench/loadtest.py) runs it against a scratch deployment
and records the figures in bench/RESULTS.md.

Each simulated client logs in once (JWT), then mostly reads: the executions
list, an execution's detail and status, the pipelines list; now and then it
runs a pipeline (``LOCUST_PIPELINE``, or any one it may see) and follows
that run's status, and now and then cancels a run it started (409 when the
run already finished counts as an answer, not a failure). Tokens are
refreshed when they expire.

``LOCUST_USERNAME`` may list several users, comma-separated, with the same
password: the clients take them in turn, so non-admin sharing checks are
under load too. ``LOCUST_WAIT`` is the think time, ``min,max`` seconds
(default ``0.5,2.0``); ``0,0`` makes every client a closed loop, so req/s
measures the server's capacity for this mix.

The server's login throttle (``THROTTLE_LOGIN``, 10/min by default) and
execute throttle (``THROTTLE_EXECUTE``, 120/min) apply to load tests too:
raise them on the server under test, or lower ``--users``. Throttled
requests (429) are reported as failures named after the endpoint, so they
show in the results instead of being hidden.

Not collected by pytest (no ``test_`` prefix): it needs a running server.
"""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

from locust import FastHttpUser, between, events, task

USERNAMES = [
    name.strip() for name in os.environ.get("LOCUST_USERNAME", "admin").split(",") if name.strip()
]
PASSWORD = os.environ.get("LOCUST_PASSWORD", "")
PIPELINE = os.environ.get("LOCUST_PIPELINE", "")
API = "/api/v1"
WAIT_MIN, WAIT_MAX = (float(x) for x in os.environ.get("LOCUST_WAIT", "0.5,2.0").split(","))
# Runs a client started and may cancel; the newest first, a few at most.
CANCELLABLE = 5
_next_user = itertools.cycle(USERNAMES)


@events.init_command_line_parser.add_listener
def _check_settings(parser: Any) -> None:
    if not PASSWORD:
        raise SystemExit("set LOCUST_PASSWORD (and LOCUST_USERNAME) for the API login")


class ApiClient(FastHttpUser):
    """One API client: a logged-in user reading runs and starting a few.

    FastHttpUser (geventhttpclient): the client costs less CPU per request than
    HttpUser's requests session, which matters when locust shares the
    server's cores (make loadtest).
    """

    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self) -> None:
        self.username = next(_next_user)
        self.token = ""
        self.refresh_token = ""
        self.execution_ids: list[str] = []
        self.started: list[str] = []
        self.pipeline_ids: list[str] = []
        self.login()
        # Something to read and to run from the first task on.
        self.list_pipelines()
        self.list_executions()

    # --- auth -----------------------------------------------------------------
    def login(self) -> None:
        with self.client.post(
            f"{API}/auth/token",
            json={"username": self.username, "password": PASSWORD},
            name="login",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"login: HTTP {response.status_code}")
                return
            body = response.json()
            self.token, self.refresh_token = body["access_token"], body["refresh_token"]

    def refresh(self) -> None:
        with self.client.post(
            f"{API}/auth/refresh",
            json={"refresh_token": self.refresh_token},
            name="refresh",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                body = response.json()
                self.token, self.refresh_token = body["access_token"], body["refresh_token"]
            else:
                response.success()  # an expired refresh token: log in again
                self.login()

    def get(self, path: str, name: str) -> Any:
        """GET with the bearer token; one refresh and retry on 401."""
        for _ in range(2):
            response = self.client.get(
                path, headers={"Authorization": f"Bearer {self.token}"}, name=name
            )
            if response.status_code != 401:
                return response
            self.refresh()
        return response

    # --- tasks (weights: mostly reads) ----------------------------------------
    @task(10)
    def list_executions(self) -> None:
        response = self.get(f"{API}/executions", "executions list")
        if response.status_code == 200:
            ids = [item["execution_id"] for item in response.json()["results"]]
            if ids:
                self.execution_ids = ids

    @task(3)
    def list_pipelines(self) -> None:
        response = self.get(f"{API}/pipelines", "pipelines list")
        if response.status_code == 200:
            ids = [
                item["pipeline_id"]
                for item in response.json()["results"]
                if not PIPELINE or item["name"] == PIPELINE
            ]
            if ids:
                self.pipeline_ids = ids

    @task(10)
    def execution_detail(self) -> None:
        if self.execution_ids:
            execution_id = random.choice(self.execution_ids)
            self.get(f"{API}/executions/{execution_id}", "execution detail")

    @task(8)
    def execution_status(self) -> None:
        if self.execution_ids:
            execution_id = random.choice(self.execution_ids)
            self.get(f"{API}/executions/{execution_id}/status", "execution status")

    @task(2)
    def execute(self) -> None:
        if not self.pipeline_ids:
            return
        response = self.client.post(
            f"{API}/pipelines/{random.choice(self.pipeline_ids)}/execute",
            json={},
            headers={"Authorization": f"Bearer {self.token}"},
            name="execute",
        )
        if response.status_code == 200:
            execution_id = response.json()["execution_id"]
            self.execution_ids.insert(0, execution_id)
            self.started = [execution_id, *self.started][:CANCELLABLE]
            self.get(f"{API}/executions/{execution_id}/status", "execution status")

    @task(1)
    def cancel(self) -> None:
        if not self.started:
            return
        with self.client.post(
            f"{API}/executions/{self.started.pop(0)}/cancel",
            headers={"Authorization": f"Bearer {self.token}"},
            name="cancel",
            catch_response=True,
        ) as response:
            # 409: the run finished before the cancel came; the server answered right.
            if response.status_code == 409:
                response.success()
