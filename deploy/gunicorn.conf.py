"""gunicorn settings of the web service (docker-compose mounts this file).

Request metrics are kept per process by prometheus_client; with several
gunicorn workers a scrape would see one worker's counts only. Multiprocess
mode makes every worker write its samples to files in
PROMETHEUS_MULTIPROC_DIR, and /metrics sums them (django-prometheus reads
the directory when the variable is set). The directory is emptied at start
and a dead worker's gauges are dropped when it exits.

The datadog_* pipeline metrics do not depend on this: they are derived from
the database in whichever process answers the scrape.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
accesslog = "-"
# Set here, in the master, so every forked worker inherits it before it
# imports prometheus_client.
multiproc_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/datadog-prometheus")


def on_starting(server: Any) -> None:
    # Files left by a previous run would add its counts to this one's.
    shutil.rmtree(multiproc_dir, ignore_errors=True)
    Path(multiproc_dir).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
