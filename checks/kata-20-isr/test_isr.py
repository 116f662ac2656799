"""Hidden checks for kata-20 (in-sync replicas and under-replicated partitions). Never shown to learners.

One fault cycle per check session, with the learner's function called in each phase:
  healthy  four topics fully in sync (three are asked about, in an order that is not sorted; one is not);
  down     broker 1 (the first address of the bootstrap list) is taken down, and the check waits until
           the cluster has moved every leadership away from it and dropped it from every ISR;
  back     broker 1 is brought back, and the check waits until every ISR is full again. Leaders that
           moved stay where they are (automatic leader rebalancing is off), so the cluster is healthy
           but not balanced.
Each phase compares the learner's answer with the cluster's own metadata, read right before and
right after the call: the rows, their order (by topic, then partition) and every field of each row
(replicas and ISR in any order).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from _kata20_support import Brokers, until
from confluent_kafka.admin import NewTopic

from grader.checklib import KafkaKit, explain
from grader.pytest_plugin import load_learner_module

DOWN = 1  # the first broker of the bootstrap list the learner gets
SPREAD = [[1, 2], [2, 3], [3, 1]]  # topic "spread": replication factor 2, one partition without broker 1
# Topic "solo": one copy per partition. With broker 1 down, partition 1 has no leader and no in-sync replica
# left: under-replicated (and offline), reported with leader -1.
SOLO = [[2], [1], [3]]
# Topic "orders": replication factor 3, replica lists not in id order. Once broker 1 is back, the ISR lists it in
# another order than the replica set, although every replica is in sync.
ORDERS = [[2, 1, 3], [3, 2, 1], [1, 3, 2]]
KEYS = ("topic", "partition", "leader", "replicas", "isr")
CALL_DEADLINE_S = 30.0


@dataclass
class Phase:
    name: str
    call: str = ""
    result: object = None
    error: BaseException | None = None
    expected: list[list[dict]] = field(default_factory=list)  # the truth before and after the call


@dataclass
class Cycle:
    topics: list[str]
    other: str
    phases: dict[str, Phase] = field(default_factory=dict)


def _truth(brokers: Brokers, topics: list[str]) -> list[dict]:
    rows = []
    for topic in sorted(topics):
        for p in sorted(brokers.partitions(topic).values(), key=lambda p: p.id):
            if len(p.isrs) < len(p.replicas):
                rows.append({"topic": topic, "partition": p.id, "leader": p.leader,
                             "replicas": sorted(p.replicas), "isr": sorted(p.isrs)})
    return rows


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _malformed(rows) -> str | None:
    """What is wrong with the shape of the learner's answer, None when it has the README's shape."""
    if not isinstance(rows, list):
        return f"a {type(rows).__name__}, not a list"
    for row in rows:
        if not isinstance(row, dict) or set(row) != set(KEYS):
            return f"the row {row!r:.200} (not a dict with exactly the keys {', '.join(KEYS)})"
        if not isinstance(row["topic"], str) or not _is_int(row["partition"]) or not _is_int(row["leader"]):
            return f"the row {row!r:.200} (topic must be a str, partition and leader ints)"
        for name in ("replicas", "isr"):
            if not isinstance(row[name], list) or not all(_is_int(b) for b in row[name]):
                return f"the row {row!r:.200} ({name} must be a list of broker ids, ints)"
    return None


def _normalise(rows: list[dict]) -> list[dict]:
    """The learner's rows, in their order, with replicas and ISR in any order (the README allows it)."""
    return [{**row, "replicas": sorted(row["replicas"]), "isr": sorted(row["isr"])} for row in rows]


@pytest.fixture(scope="module")
def cycle(cluster, bootstrap_servers, impl_path, pytestconfig):
    run_id = pytestconfig.getoption("--kata-run-id") or uuid.uuid4().hex[:6]
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{run_id}-isr")
    brokers = Brokers(cluster)
    try:
        if not brokers.heal():
            pytest.fail("The cluster did not get back to 3 registered brokers before the check (infrastructure).",
                        pytrace=False)
        orders, spread, solo = kit.unique("orders"), kit.unique("spread"), kit.unique("solo")
        futures = kit.admin.create_topics([NewTopic(name, num_partitions=len(layout), replica_assignment=layout)
                                           for name, layout in ((orders, ORDERS), (spread, SPREAD), (solo, SOLO))])
        for name, future in futures.items():
            future.result(timeout=30)
            kit.created_topics.append(name)
        other = kit.create_topic(name=kit.unique("not-asked"), partitions=1, replication_factor=3)
        # Not in sorted order: the answer must be sorted by topic whatever order the topics come in.
        c = Cycle(topics=[spread, orders, solo], other=other)
        all_topics = (orders, spread, solo, other)
        if not brokers.heal(all_topics):
            pytest.fail("The new topics did not get all their replicas in sync within 60 s (infrastructure).",
                        pytrace=False)
        impl = load_learner_module(impl_path)

        def call(name: str, what: str) -> None:
            phase = Phase(name, call=f"{what}, then called under_replicated_partitions(bootstrap, {c.topics!r})")
            phase.expected.append(_truth(brokers, c.topics))
            try:
                phase.result = impl.under_replicated_partitions(bootstrap_servers, list(c.topics))
            except Exception as exc:  # reported by the checks, in the learner's terms
                phase.error = exc
            phase.expected.append(_truth(brokers, c.topics))
            c.phases[name] = phase

        call("healthy", "created the topics and waited until every replica was in sync")

        brokers.take_down(DOWN)
        # A partition whose only replica is broker 1 has no leader left; every other one has a new leader.
        moved = until(lambda: all((p.leader == -1 if p.replicas == [DOWN] else p.leader not in (DOWN, -1))
                                  and DOWN not in p.isrs
                                  for t in all_topics for p in brokers.partitions(t).values()), 30)
        if not moved:
            pytest.fail(f"The cluster did not drop broker {DOWN} from the ISRs within 30 s (infrastructure).",
                        pytrace=False)
        call("down", f"took broker {DOWN} down and waited until the cluster dropped it from every ISR")

        brokers.bring_back(DOWN)
        if not brokers.heal(all_topics):
            pytest.fail(f"Broker {DOWN} did not rejoin every ISR within 60 s (infrastructure).", pytrace=False)
        call("back", f"took broker {DOWN} down, brought it back and waited until every ISR was full again")
        yield c
    finally:
        brokers.heal()
        kit.close()


def _judge(phase: Phase, nudge: str) -> None:
    if phase.error is not None:
        explain(did=phase.call, saw=f"it raised {type(phase.error).__name__}: {str(phase.error)[:300]}",
                expected="a list of the under-replicated partitions", nudge=nudge)
    problem = _malformed(phase.result)
    if problem:
        explain(did=phase.call, saw=f"it returned {phase.result!r:.300}: {problem}",
                expected='a list of dicts {"topic": str, "partition": int, "leader": int, "replicas": [int, ...], '
                '"isr": [int, ...]}', seen_in="your function's return value")
    rows = _normalise(phase.result)
    if rows in phase.expected:
        return
    want = phase.expected[-1]
    key = lambda r: (r["topic"], r["partition"])  # noqa: E731
    if sorted(rows, key=key) in phase.expected:
        explain(did=phase.call, saw=f"the right partitions, in the order {[key(r) for r in rows]}",
                expected=f"sorted by topic, then partition: {[key(r) for r in want]}",
                nudge="the topics you are given are not necessarily in sorted order.",
                seen_in="your function's return value")
    got_keys, want_keys = {key(r) for r in rows}, {key(r) for r in want}
    if len(got_keys) < len(rows):
        twice = next(k for k in got_keys if sum(key(r) == k for r in rows) > 1)
        explain(did=phase.call, saw=f"the partition {twice} is reported more than once",
                expected="one row per under-replicated partition", seen_in="your function's return value")
    missing, extra = sorted(want_keys - got_keys), sorted(got_keys - want_keys)
    if missing or extra:
        saw = []
        if missing:
            saw.append(f"{len(missing)} under-replicated partitions missing from your answer, e.g. "
                       f"{[r for r in want if key(r) == missing[0]][0]}")
        if extra:
            saw.append(f"{len(extra)} partitions reported that are not under-replicated, e.g. "
                       f"{[r for r in rows if key(r) == extra[0]][0]}")
        explain(did=phase.call, saw="; ".join(saw),
                expected=f"exactly the {len(want)} partitions whose ISR is smaller than their replica set"
                + (f": {sorted(want_keys)}" if want_keys else ""),
                nudge=nudge, seen_in="your function's return value (compared with the cluster's metadata)")
    wrong = next(r for r in rows if r not in want)
    truth = next(r for r in want if key(r) == key(wrong))
    explain(did=phase.call, saw=f"you reported {wrong}", expected=f"what the cluster's metadata says: {truth}",
            nudge="take leader, replicas and ISR from the same fresh metadata; replicas is the full assignment, "
            "in sync or not, and leader is the broker that leads now (-1 when none does).",
            seen_in="your function's return value")


def test_a_healthy_cluster_has_no_under_replicated_partitions(cycle):
    """With every replica in sync, no partition is reported."""
    _judge(cycle.phases["healthy"], nudge="a partition is under-replicated when some of its replicas are not in sync.")


def test_reports_the_partitions_a_stopped_broker_left_behind(cycle):
    """With one broker down, exactly the partitions it held are reported, with their leader, replicas and ISR."""
    _judge(cycle.phases["down"],
           nudge="a partition that lost one copy of three still has enough for min.insync.replicas=2, and a new "
           "leader: what tells you it is short of a copy? And which broker do you ask, when one of the addresses "
           "you were given is down?")


def test_reports_nothing_once_the_broker_has_caught_up(cycle):
    """Once the broker is back and in sync, nothing is reported, although the leaders did not move back."""
    _judge(cycle.phases["back"],
           nudge="a partition led by a broker other than its preferred (first) replica is unbalanced, not "
           "under-replicated: all its replicas can still be in sync.")
