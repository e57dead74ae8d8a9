"""Operations endpoints: /healthz, /readyz, /metrics."""

from django.urls import path

from datadog_web import ops

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
]
