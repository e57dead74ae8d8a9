"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

# A cluster whose last status report is older than this counts as dead.
WORKER_STALE_SECONDS = 60


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
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
        return None
    except Exception as exc:
        return f"redis: {type(exc).__name__}"


def live_workers() -> int:
    """Worker clusters that reported within WORKER_STALE_SECONDS."""
    from django_q.status import Stat

    now = timezone.now()
    alive = 0
    for stat in Stat.get_all():
        stamp = getattr(stat, "timestamp", None)
        if stamp is not None and (now - stamp).total_seconds() <= WORKER_STALE_SECONDS:
            alive += 1
    return alive


def _check_worker() -> str | None:
    try:
        return None if live_workers() > 0 else "worker: no live worker cluster"
    except Exception as exc:
        return f"worker: {type(exc).__name__}"


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and at least one live worker; 503 naming what is down."""
    problems = [p for p in (_check_database(), _check_redis(), _check_worker()) if p]
    if problems:
        return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; a bearer token when METRICS_TOKEN is set."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    from django_prometheus.exports import ExportToDjangoView

    return ExportToDjangoView(request)
