"""The 3-broker cluster and the fault proxy, for real: a killed leader is replaced, the
ISR shrinks and recovers, and dropped responses make a non-idempotent producer write
duplicates while an idempotent one writes none."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.broker.local import start_local
from grader.kit import KafkaKit
from grader.kit.cluster import ClusterControl
from grader.kit.faultproxy import FaultProxy

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def cluster():
    broker = start_local(lambda m: None, node_count=3, proxy=True)
    control = ClusterControl(broker.control_file)
    proxies = {n: FaultProxy(control.advertised_port(n), control.port(n)) for n in control.node_ids}
    yield broker, control, proxies
    for p in proxies.values():
        p.close()
    broker.stop()


def kit(control, proxies):
    return KafkaKit(",".join(f"127.0.0.1:{p.listen_port}" for p in proxies.values()), "faults")


def test_three_brokers_registered_and_loopback(cluster):
    broker, control, _ = cluster
    assert len(control.admin().list_topics(timeout=10).brokers) == 3


def test_killed_leader_is_replaced_and_isr_recovers(cluster):
    broker, control, proxies = cluster
    k = kit(control, proxies)
    topic = k.create_topic(partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})
    assert control.wait_isr(topic, 3) == [1, 2, 3]
    old = control.leader(topic)
    control.kill(old)
    new = control.wait_leader_other_than(topic, old)
    assert new != old
    assert old not in control.wait_isr(topic, 2)
    control.start(old)
    control.wait_registered(3)
    assert control.wait_isr(topic, 3) == [1, 2, 3]
    k.close()


def _produce_through_dropped_responses(k, proxies, topic, idempotent):
    producer = k.producer(**{"enable.idempotence": idempotent, "acks": "all", "request.timeout.ms": 1500,
                             "message.timeout.ms": 60000, "retries": 100, "retry.backoff.ms": 100,
                             "max.in.flight.requests.per.connection": 1 if not idempotent else 5})
    producer.produce(topic, value=b"warm-up")  # metadata and (if idempotent) the producer id
    assert producer.flush(15) == 0
    for p in proxies.values():
        p.set_mode("drop_responses")
    for i in range(5):
        producer.produce(topic, value=f"m{i}".encode())
    producer.poll(0)
    time.sleep(4)  # test, not check: let at least two request timeouts and retries happen
    for p in proxies.values():
        p.set_mode("pass")
    assert producer.flush(30) == 0
    return [r.value for r in k.read_all(topic)]


def test_dropped_responses_duplicate_without_idempotence_only(cluster):
    broker, control, proxies = cluster
    k = kit(control, proxies)
    plain = _produce_through_dropped_responses(k, proxies, k.create_topic(replication_factor=3), idempotent=False)
    safe = _produce_through_dropped_responses(k, proxies, k.create_topic(replication_factor=3), idempotent=True)
    k.close()
    expected = [b"warm-up"] + [f"m{i}".encode() for i in range(5)]
    assert len(plain) > len(expected), f"no duplicates without idempotence: {plain}"
    assert sorted(set(plain)) == sorted(expected)
    assert safe == expected, f"idempotent producer wrote {safe}"


def test_a_fault_kata_may_kill_and_restart_nodes_under_grade(tmp_path):
    """Through the real CLI: stopping a node on purpose is not 'the broker died', and the
    restarted node is stopped with the run."""
    from conftest import FIXTURES, kafka_jvms, run_grade

    course = FIXTURES / "course-faults"
    before = {line.split()[0] for line in kafka_jvms()}
    result = run_grade("kata-01", "--solution", "--course", str(course), env={"KAFKA_KATAS_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    stub = run_grade("kata-01", "--course", str(course), env={"KAFKA_KATAS_DATA": str(tmp_path)})
    assert stub.returncode == 1, stub.stdout + stub.stderr
    assert "What the broker showed: []" in stub.stdout
    leftover = {line.split()[0] for line in kafka_jvms()} - before
    assert not leftover, f"broker JVMs left behind: {leftover}"


OWNER = """
import sys, time
from grader.broker.local import start_local
broker = start_local(lambda m: None, node_count=3)
print("CONTROL", broker.control_file, flush=True)
time.sleep(300)
"""


def _pids_under(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout.split("\n")[1:]
    rows = [line.split() for line in out if line.strip()]
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [int(c) for c, p in rows if int(p) == parent]
        found += kids
        todo += kids
    return found


def test_a_node_restarted_by_a_check_dies_with_a_sigkilled_grader():
    """A check restarts a node it stopped (so the node is not the grader's child); the grader is
    then SIGKILLed, which runs no cleanup code: the restarted node must go down all the same."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        line = owner.stdout.readline()
        assert line.startswith("CONTROL "), line
        control = ClusterControl(Path(line.split(None, 1)[1].strip()))
        first_pids = [n["pid"] for n in control._read()["nodes"]]
        control.stop(2)
        control.start(2)  # as a check does: from another process than the cluster's owner
        keeper = control._node(2)["pid"]
        restarted = [keeper, *_pids_under(keeper)]
        assert any("kafka.Kafka" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
                   for p in restarted if Path(f"/proc/{p}/cmdline").exists())
    finally:
        owner.kill()
        owner.wait(10)
    deadline = time.monotonic() + 20
    everything = [p for p in first_pids + restarted if p]
    while any(Path(f"/proc/{p}").exists() for p in everything) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [p for p in everything if Path(f"/proc/{p}").exists()
             and Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"]
    assert not alive, f"broker processes {alive} outlived the SIGKILLed grader"
