"""Shared plumbing at the bottom of the layers: imports no app of this project.

Rules every app needs in one place (the outbound host policy, ...) live here,
so ``accounts``, ``connectors`` and ``pipelines`` import them instead of each
other.
"""
