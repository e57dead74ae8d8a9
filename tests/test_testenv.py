"""The test process and its workers share one configuration."""

from django.conf import settings


def test_it_configures_the_test_process_like_its_workers() -> None:
    import os

    assert settings.TASK_LEASE_SECONDS == int(os.environ["TASK_LEASE_SECONDS"])
    assert settings.REDIS_PREFIX == os.environ["REDIS_PREFIX"]
    assert settings.Q_CLUSTER["name"] == os.environ["REDIS_PREFIX"]
