"""Test-wide environment, loaded as a pytest plugin (``-p tests.testenv``).

A plugin is imported before pytest-django configures Django, so the test
process and the worker processes it starts (which inherit the environment)
read the same settings: short engine timings, so lease expiry and reaper
passes happen in seconds, and a Redis prefix of this run's own, so runs never
see each other's queue messages or cache keys.
"""

import os
import uuid

os.environ.setdefault("REDIS_PREFIX", f"dd_test_{uuid.uuid4().hex[:8]}")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.setdefault("DATADOG_TESTING", "1")
os.environ.setdefault("TASK_LEASE_SECONDS", "4")
os.environ.setdefault("HEARTBEAT_SECONDS", "1")
os.environ.setdefault("REAPER_SECONDS", "1")
os.environ.setdefault("QUEUED_GRACE_SECONDS", "3")
os.environ.setdefault("WORKERS", "2")
