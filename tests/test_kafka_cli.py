"""`grade kafka TOOL`: Kafka's own CLI tools against the reusable broker."""

import pytest
from conftest import run_grade
from test_broker_reusable import cache  # noqa: F401 - the private-cache fixture

pytestmark = pytest.mark.broker


def test_tools_run_against_the_reusable_broker(cache):  # noqa: F811
    import os

    env = {"KAFKA_KATAS_CACHE": os.environ["KAFKA_KATAS_CACHE"]}
    assert run_grade("broker", "up", env=env).returncode == 0
    try:
        created = run_grade("kafka", "topics", "--create", "--topic", "cli-demo", "--partitions", "3", env=env)
        assert created.returncode == 0, created.stderr
        assert "Created topic cli-demo." in created.stdout
        described = run_grade("kafka", "topics", "--describe", "--topic", "cli-demo", env=env)
        assert "PartitionCount: 3" in described.stdout
        assert "SLF4J" not in described.stderr
        groups = run_grade("kafka", "consumer-groups", "--list", env=env)
        assert groups.returncode == 0, groups.stderr
    finally:
        run_grade("broker", "down", env=env)


def test_no_broker_means_a_clear_error(cache):  # noqa: F811
    import os

    result = run_grade("kafka", "topics", "--list", env={"KAFKA_KATAS_CACHE": os.environ["KAFKA_KATAS_CACHE"]})
    assert result.returncode == 2
    assert "run `grade broker up` first" in result.stderr
