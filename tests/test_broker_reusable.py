"""`grade broker up|down|status` for real, and stale state recovered."""

import json
import os

import pytest
from conftest import OK_COURSE, kafka_jvms, run_grade

pytestmark = pytest.mark.broker


@pytest.fixture
def cache(tmp_path, monkeypatch):
    # A private cache folder so this test never touches a developer's reusable broker.
    from grader.broker import jars

    cache = tmp_path / "cache"
    version_dir = cache / f"kafka-{jars.KAFKA_VERSION}"
    version_dir.mkdir(parents=True)
    # Share the jars (and the start-up template and class archive, when present) with the real cache.
    for name in ("lib", "tools-lib", "cds", "storage-template"):
        shared = jars.jar_dir().parent / name
        if shared.exists():
            (version_dir / name).symlink_to(shared)
    monkeypatch.setenv("KAFKA_KATAS_CACHE", str(cache))
    return cache


def grade(*args):
    return run_grade(*args, env={"KAFKA_KATAS_CACHE": os.environ["KAFKA_KATAS_CACHE"]})


def test_up_reuse_down(cache):
    assert grade("broker", "status").returncode == 1
    up = grade("broker", "up")
    assert up.returncode == 0, up.stderr
    assert "Started reusable Kafka broker" in up.stdout
    state = json.loads((cache / "broker-state.json").read_text())
    try:
        assert "Already running" in grade("broker", "up").stdout
        run = grade("kata-01", "--course", str(OK_COURSE), "--solution")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Using the reusable broker" in run.stderr
        # the run did not stop it
        assert grade("broker", "status").returncode == 0
    finally:
        down = grade("broker", "down")
    assert down.returncode == 0 and "Stopped" in down.stdout
    assert not (cache / "broker-state.json").exists()
    assert not any(line.split()[0] == str(state["pids"][0]) for line in kafka_jvms())


def test_stale_state_is_recovered(cache):
    (cache / "broker-state.json").write_text(json.dumps({
        "pids": [999999], "bootstrap_servers": "127.0.0.1:1", "root": "/nonexistent/kafka-katas-x",
        "log": "", "kafka_version": "4.2.0"}))
    status = grade("broker", "status")
    assert status.returncode == 1 and "Not running" in status.stdout
    assert not (cache / "broker-state.json").exists()


def test_corrupt_state_file_counts_as_not_running(cache):
    (cache / "broker-state.json").write_text("{not json")
    assert grade("broker", "status").returncode == 1
