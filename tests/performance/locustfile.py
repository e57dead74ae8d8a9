"""Load profile of API clients: login, list, detail, execute and status.

    pip install locust
    LOCUST_USERNAME=admin LOCUST_PASSWORD=... \
    locust -f tests/performance/locustfile.py --host http://localhost:8000 \
        --users 32 --spawn-rate 8 --run-time 2m --headless

Each simulated client logs in once (JWT), then mostly reads: the executions
list, an execution's detail and status, the pipelines list; now and then it
runs a pipeline (``LOCUST_PIPELINE``, or the first one it may see) and
follows that run's status. Tokens are refreshed when they expire.

The server's login throttle (``THROTTLE_LOGIN``, 10/min by default) and
execute throttle (``THROTTLE_EXECUTE``, 120/min) apply to load tests too:
raise them on the server under test, or lower ``--users``. Throttled
requests (429) are reported as failures named after the endpoint, so they
show in the results instead of being hidden.

Not collected by pytest (no ``test_`` prefix): it needs a running server.
"""

from __future__ import annotations

import os
import random
from typing import Any

from locust import HttpUser, between, events, task

USERNAME = os.environ.get("LOCUST_USERNAME", "admin")
PASSWORD = os.environ.get("LOCUST_PASSWORD", "")
PIPELINE = os.environ.get("LOCUST_PIPELINE", "")
API = "/api/v1"


@events.init_command_line_parser.add_listener
def _check_settings(parser: Any) -> None:
    if not PASSWORD:
        raise SystemExit("set LOCUST_PASSWORD (and LOCUST_USERNAME) for the API login")


class ApiClient(HttpUser):
    """One API client: a logged-in user reading runs and starting a few."""

    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.token = ""
        self.refresh_token = ""
        self.execution_ids: list[str] = []
        self.pipeline_id = ""
        self.login()
        # Something to read and to run from the first task on.
        self.list_pipelines()
        self.list_executions()

    # --- auth -----------------------------------------------------------------
    def login(self) -> None:
        with self.client.post(
            f"{API}/auth/token",
            json={"username": USERNAME, "password": PASSWORD},
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
        if response.status_code == 200 and not self.pipeline_id:
            for item in response.json()["results"]:
                if not PIPELINE or item["name"] == PIPELINE:
                    self.pipeline_id = item["pipeline_id"]
                    break

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

    @task(1)
    def execute(self) -> None:
        if not self.pipeline_id:
            return
        response = self.client.post(
            f"{API}/pipelines/{self.pipeline_id}/execute",
            json={},
            headers={"Authorization": f"Bearer {self.token}"},
            name="execute",
        )
        if response.status_code == 200:
            execution_id = response.json()["execution_id"]
            self.execution_ids.insert(0, execution_id)
            self.get(f"{API}/executions/{execution_id}/status", "execution status")
