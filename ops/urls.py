"""Operations endpoints: /healthz, /readyz, /metrics."""

from django.urls import path

from ops import views as ops

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
]
