"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ops import metrics as pipeline_metrics
from ops import supervision

logger = logging.getLogger(__name__)

# A cluster whose last status report (or a worker whose heartbeat) is older
# than this counts as dead.
WORKER_STALE_SECONDS = supervision.STALE_SECONDS


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    except Exception as exc:  # any failure means not ready
        return f"database: {type(exc).__name__}"


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
        return None
    except Exception as exc:
        return f"redis: {type(exc).__name__}"


def live_workers() -> int:
    """Worker clusters that reported within WORKER_STALE_SECONDS.

    A cluster's sentinel reports every few seconds with a 3 s expiry (in
    Redis, or the shared cache embedded), so a dead one vanishes well within
    the 60 s SPEC §7 allows; the age check also catches a frozen sentinel.
    """
    return sum(1 for c in pipeline_metrics.worker_clusters() if c["age"] <= WORKER_STALE_SECONDS)


def _check_worker() -> str | None:
    try:
        return None if live_workers() > 0 else "worker: no live worker cluster"
    except Exception as exc:
        return f"worker: {type(exc).__name__}"


def _stale_workers() -> list[dict[str, object]]:
    """``worker`` commands whose heartbeat stopped (killed or frozen whole, host lost)."""
    try:
        stale = supervision.stale_heartbeats(WORKER_STALE_SECONDS)
    except Exception:
        return []
    return [{"host": b.host, "pid": b.pid, "age_seconds": round(b.age)} for b in stale]


def _stall() -> dict[str, object]:
    try:
        return pipeline_metrics.stall_state()
    except Exception as exc:
        return {"stalled": None, "error": type(exc).__name__}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and at least one live worker; 503 naming what is down.

    ``stall`` reports a queue that has not moved for 5 minutes. It is a flag,
    not a 503: readiness decides whether this web process gets traffic, and
    taking the UI away from operators while workers are stuck helps nobody.
    Prometheus alerts on it (datadog_queue_stalled).

    ``stale_workers`` names each ``manage.py worker`` whose heartbeat is older
    than WORKER_STALE_SECONDS (ops.supervision): also a report, not a 503
    while another cluster is live.
    """
    database = _check_database()
    problems = [p for p in (database, _check_redis(), _check_worker()) if p]
    body: dict[str, object] = {"status": "unavailable" if problems else "ok"}
    if problems:
        body["problems"] = problems
    if database is None:
        body["stall"] = _stall()
    stale = _stale_workers()
    if stale:
        body["stale_workers"] = stale
    return JsonResponse(body, status=503 if problems else 200)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; a bearer token when METRICS_TOKEN is set."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    # django-prometheus' own families (requests, per process or multiprocess),
    # then ours, computed from the database for every process alike.
    response = ExportToDjangoView(request)
    try:
        ours = generate_latest(pipeline_metrics.registry)
    except Exception:
        logger.exception("pipeline metrics failed")
        ours = b"# pipeline metrics unavailable (see the web log)\n"
    response.content = response.content + ours
    response["Content-Type"] = CONTENT_TYPE_LATEST
    return response
