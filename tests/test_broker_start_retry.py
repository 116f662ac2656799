"""A broker that is only slow to start gets one automatic retry with a clear line, and a
second slow start says what was slow; its JVMs never outlive the attempt."""

import pytest
from conftest import kafka_jvms

from grader.broker import base, local

pytestmark = pytest.mark.broker


def test_a_slow_start_is_retried_once_then_named(monkeypatch):
    before = set(kafka_jvms())
    monkeypatch.setattr(local, "START_TIMEOUT_S", 0.0)  # every start "too slow"
    lines = []
    with pytest.raises(local.StartTimeout) as raised:
        local.start_local(lines.append)
    retries = [line for line in lines if line.endswith("Starting it once more…")]
    assert len(retries) == 1 and "did not answer within 0s" in retries[0]
    message = raised.value.render()
    assert "load average" in message and "the machine is busy" in message
    assert "Next: check the machine's load (`uptime`) and run the same command again." in message
    assert set(kafka_jvms()) <= before


def test_a_living_broker_that_answers_late_is_not_called_dead(monkeypatch):
    answers = iter([False, True])
    broker = local.LocalBroker.__new__(local.LocalBroker)
    monkeypatch.setattr(local.LocalBroker, "process_alive", lambda self: True)
    monkeypatch.setattr(base, "metadata_answers", lambda servers, timeout, properties=None: next(answers))
    broker.bootstrap_servers, broker.client_properties = "127.0.0.1:1", {}
    assert broker.alive()


def test_an_outside_cluster_that_answers_late_is_not_called_dead(monkeypatch):
    """`--bootstrap-servers` under load (a class grading at once): one slow metadata answer is not a death."""
    asked = []
    monkeypatch.setattr(base, "metadata_answers",
                        lambda servers, timeout, properties=None: asked.append(timeout) or len(asked) == 3)
    assert base.Broker("127.0.0.1:1", "external").alive()
    assert asked == [5.0, 10.0, 15.0]


def test_an_outside_cluster_that_never_answers_is_dead(monkeypatch):
    monkeypatch.setattr(base, "metadata_answers", lambda servers, timeout, properties=None: False)
    assert not base.Broker("127.0.0.1:1", "external").alive()


def test_grade_with_an_impossible_start_deadline_retries_once_and_exits_3(tmp_path):
    """Caused for real through the CLI: KAFKA_KATAS_START_TIMEOUT_S=0 makes every start too slow."""
    import shutil

    from conftest import run_grade

    from grader.broker import jars, warmup

    jars.kafka_classpath(lambda m: None)  # fetched once, shared
    # A cache of this test's own (the jars linked, the storage template copied): the JVMs it starts carry
    # tmp_path on their command line, so other brokers on a shared machine never confuse the last assert.
    own = tmp_path / f"kafka-{jars.KAFKA_VERSION}"
    own.mkdir()
    (own / "lib").symlink_to(jars.jar_dir())
    if warmup.template_dir(1).parent.is_dir():
        shutil.copytree(warmup.template_dir(1).parent, own / "storage-template")
    result = run_grade("kata-01", "--solution", "--broker", "local",
                       env={"KAFKA_KATAS_START_TIMEOUT_S": "0", "KAFKA_BOOTSTRAP_SERVERS": "",
                            "KAFKA_KATAS_CACHE": str(tmp_path)})
    out = result.stdout + result.stderr
    assert result.returncode == 3, out
    assert out.count("Starting it once more…") == 1, out
    assert "Infrastructure error (not a problem with your code)" in out
    assert "The local Kafka broker did not answer within 0s (load average" in out
    assert not [jvm for jvm in kafka_jvms() if str(tmp_path) in jvm]


def test_a_start_deadline_that_is_not_a_number_is_a_usage_error():
    from conftest import run_grade

    result = run_grade("kata-01", "--solution", "--broker", "local",
                       env={"KAFKA_KATAS_START_TIMEOUT_S": "soon", "KAFKA_BOOTSTRAP_SERVERS": ""})
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "KAFKA_KATAS_START_TIMEOUT_S='soon' is not a number of seconds." in out
    assert "unset KAFKA_KATAS_START_TIMEOUT_S" in out
