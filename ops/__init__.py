"""Operations, on top of the apps it reports on: metrics, health and readiness, bootstrap.

It may import ``pipelines`` and ``connectors`` (and below); nothing but the
project package (``datadog_web``) imports it.
"""
