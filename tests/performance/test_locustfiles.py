"""The load test's locustfiles import and ask for URLs the product serves.

``make loadtest`` is not part of ``make test``; this keeps its client from
rotting unseen. Locust runs in a subprocess (importing it monkey-patches the
standard library with gevent, which must not leak into the test process),
plays every task of each user class once against a recording HTTP server on
127.0.0.1, and the paths it sent are resolved here with Django's URL
resolver: each must reach a named view (not the API's catch-all 404) that
implements the method.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.urls import resolve

PERF = Path(__file__).resolve().parent
ROOT = PERF.parent.parent

# In the subprocess: each user class's on_start, then each of its tasks once
# (in declaration order, so execute comes before cancel), then once more.
PLAY = """
import sys
sys.path.insert(0, sys.argv[1])
from locust.env import Environment
import bare, locustfile

for user_class in (locustfile.ApiClient, bare.Bare):
    user_class.host = sys.argv[2]
    user = user_class(Environment(user_classes=[user_class]))
    if hasattr(user, "on_start"):
        user.on_start()
    for _ in range(2):
        for task in dict.fromkeys(user_class.tasks):
            task(user)
"""

# Enough of the API's answers for the client to go on to its next request.
ANSWERS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/auth/token"): {"access_token": "a", "refresh_token": "r"},
    ("GET", "/api/v1/pipelines"): {"results": [{"pipeline_id": "p-1", "name": "one"}]},
    ("GET", "/api/v1/executions"): {"results": [{"execution_id": "e-1"}]},
    ("POST", "/api/v1/pipelines/p-1/execute"): {"execution_id": "e-2"},
}


class Recorder:
    """An HTTP server on 127.0.0.1 that records method and path, and answers JSON."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = (self.command, self.path)
                recorder.requests.append(key)
                body = json.dumps(ANSWERS.get(key, {})).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def test_locustfile_tasks_request_urls_the_product_serves(recorder: Recorder) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PLAY, str(PERF), recorder.url],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "LOCUST_USERNAME": "u1,u2", "LOCUST_PASSWORD": "pw"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    reached = set()
    for method, path in recorder.requests:
        match = resolve(path)
        # The API's catch-all (a JSON 404 for any unknown /api/v1/ path) has no name.
        assert match.url_name, f"{method} {path}: no view of the product serves it"
        view = match.func.view_class if hasattr(match.func, "view_class") else None
        if view is not None:
            assert hasattr(view, method.lower()), (
                f"{method} {path}: {view.__name__} has no {method}"
            )
        else:
            assert method == "GET", f"{method} {path}: a function view, expected GET"
        reached.add(match.url_name)
    # login, lists, detail, execute, status, cancel, and the bare baseline.
    assert reached == {
        "api-token",
        "api-pipelines",
        "api-executions",
        "api-execution",
        "api-execution-status",
        "api-pipeline-execute",
        "api-execution-cancel",
        "healthz",
    }
