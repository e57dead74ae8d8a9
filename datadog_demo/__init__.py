"""The demo's python task code (``manage.py demo``, pipeline ``demo_drop_zone``).

A stand-in for a team's own package installed beside the product: python
tasks may call it only when ``PYTHON_TASK_MODULES`` lists ``datadog_demo``
(``make run`` sets it; see docs/python-tasks.md).
"""
