"""Loaded before Django: test-wide environment.

Engine timings are shortened so lease expiry and reaper passes happen in
seconds; each run gets its own Redis prefix (queue and cache keys) so runs
never see each other's messages.
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
