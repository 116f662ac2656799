"""Hidden checks for kata-19 (replicated writes: acks=all and min.insync.replicas). Never shown to learners.

Two scenarios on a 3-broker cluster, each one call of the learner's publish() on a fresh topic with
one partition, replication factor 3 and min.insync.replicas=2; the checks judge what the callbacks
and the return value reported against what the brokers hold.

- The leader fails mid-stream: once the first messages are committed, the partition leader is frozen
  (what is sent to it stays unanswered), then its client connections are cut. A new leader takes
  over within seconds. Read back from the new leader before the old one returns.
- Two of three brokers fail: once the first messages are committed, both followers go down at once.
  Only the leader is left (and, since every node here is also a controller, no controller quorum,
  so the ISR cannot even shrink): no write can be replicated, so none may be acknowledged, and
  every one of them must come back to the caller as failed.

Brokers are taken down by freezing their JVM and cutting their connections (see _kata19_support).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest
from _kata19_support import Brokers, Stream, run_with_deadline, show_the_loss, until

from grader.checklib import KafkaKit, explain
from grader.pytest_plugin import load_learner_module

TOPIC_CONFIG = {"min.insync.replicas": "2"}

FAILOVER_MESSAGES = 300
FAILOVER_FREEZE_AT = 60  # the leader freezes once these are committed...
FAILOVER_CUT_AT = 100  # ...and its connections are cut when the learner asks for this one
FAILOVER_DELIVERY_TIMEOUT_S = 30.0  # a new leader is elected in ~5 s: plenty of time to recover

OUTAGE_MESSAGES = 60
OUTAGE_AT = 40  # both followers go down once these are committed
OUTAGE_DELIVERY_TIMEOUT_S = 6.0
# librdkafka expires a message at the first timeout scan after message.timeout.ms (scans run about once a
# second); the reference returns within T + 1.5 s of the last message. The margins allow for a loaded machine.
GIVE_UP_EARLY_MARGIN_S = 0.3
GIVE_UP_LATE_MARGIN_S = 5.0


def make_messages(n: int, prefix: str) -> list[tuple[str, str]]:
    # Not all ASCII: key and value must travel as UTF-8 bytes.
    return [(f"{prefix}-clé-{i % 4}", f"{prefix}-{i:04d}-ü") for i in range(n)]


@dataclass
class Run:
    """One call of the learner's publish() and what the cluster showed around it."""

    topic: str
    messages: list[tuple[str, str]]
    delivery_timeout_s: float
    stream: Stream | None = None
    acked: list[str] = field(default_factory=list)
    returned: bool = False
    result: object = None
    error: BaseException | None = None
    present: set[str] = field(default_factory=set)
    wrong_keys: list[tuple[str, bytes | None]] = field(default_factory=list)  # (value, key) read back
    callback_types: set[str] = field(default_factory=set)  # types on_acknowledged was called with
    returned_at: float | None = None
    deadline_s: float = 0.0  # how long the check waits for publish to return
    closed: bool = False  # set once the check stops waiting: later reports came after the check healed the cluster
    acked_by_cut: int | None = None  # acknowledgements reported when the learner asked for message FAILOVER_CUT_AT
    old_leader: int | None = None
    new_leader: int | None = None
    downtime_s: float | None = None
    demo: str = ""

    def call(self) -> str:
        return (f"called publish(bootstrap, {self.topic!r}, <{len(self.messages)} messages>, on_acknowledged, "
                f"delivery_timeout_s={self.delivery_timeout_s:g})")

    @property
    def values(self) -> list[str]:
        return [v for _, v in self.messages]

    def failed(self) -> list[str]:
        """The returned list, once the return value is known to be a list of message values."""
        if isinstance(self.result, (list, tuple, set)):
            return [v.decode() if isinstance(v, bytes) else v for v in self.result]
        return []


def _start(cluster, bootstrap_servers, impl_path, pytestconfig, name: str, messages, timeout_s):
    run_id = pytestconfig.getoption("--kata-run-id") or uuid.uuid4().hex[:6]
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{run_id}-{name}")
    brokers = Brokers(cluster)
    if not brokers.heal():
        pytest.fail("The cluster did not get back to 3 registered brokers before the check (infrastructure).",
                    pytrace=False)
    topic = kit.create_topic(partitions=1, replication_factor=3, config=TOPIC_CONFIG)
    brokers.heal((topic,))
    run = Run(topic, messages, timeout_s)
    impl = load_learner_module(impl_path)

    def on_acknowledged(value) -> None:
        if run.closed:
            return
        run.callback_types.add(type(value).__name__)
        run.acked.append(value.decode() if isinstance(value, bytes) else value)

    def call():
        result = impl.publish(bootstrap_servers, topic, run.stream, on_acknowledged, timeout_s)
        run.returned_at = time.monotonic()
        return result

    return kit, brokers, run, call


@pytest.fixture(scope="module")
def failover(cluster, bootstrap_servers, impl_path, pytestconfig):
    kit, brokers, run, call = _start(cluster, bootstrap_servers, impl_path, pytestconfig, "failover",
                                     make_messages(FAILOVER_MESSAGES, "fo"), FAILOVER_DELIVERY_TIMEOUT_S)
    try:
        def freeze_leader():
            if not until(lambda: brokers.committed(run.topic) >= FAILOVER_FREEZE_AT, 20):
                return (f"20 s after {FAILOVER_FREEZE_AT} messages were handed over, the cluster had committed "
                        f"only {brokers.committed(run.topic)}")
            run.old_leader = brokers.leader(run.topic)
            brokers.freeze(run.old_leader)
            return None

        def cut_leader():
            # The first FAILOVER_FREEZE_AT were acknowledged by the cluster well before: have they been reported?
            run.acked_by_cut = len(run.acked)
            brokers.cut(run.old_leader)

        run.stream = Stream(run.messages, {FAILOVER_FREEZE_AT: freeze_leader, FAILOVER_CUT_AT: cut_leader})
        run.deadline_s = FAILOVER_DELIVERY_TIMEOUT_S + 20
        run.returned, run.result, run.error = run_with_deadline(call, run.deadline_s)
        run.closed = True
        if run.old_leader is not None:
            brokers.cut(run.old_leader)  # in case the learner never asked for message FAILOVER_CUT_AT
            if until(lambda: brokers.leader(run.topic) not in (run.old_leader, -1), 30):
                run.new_leader = brokers.leader(run.topic)
                run.downtime_s = time.monotonic() - run.stream.marks[FAILOVER_FREEZE_AT]
                # Read back while the old leader is still down: what the new leader has is what survived.
                records = kit.read_all(run.topic, timeout=15)
                run.present = {r.value_text for r in records}
                key_of = {v: k for k, v in run.messages}
                run.wrong_keys = [(r.value_text, r.key) for r in records
                                  if r.value_text in key_of and r.key != key_of[r.value_text].encode()]
        brokers.heal((run.topic,))
        yield run
    finally:
        brokers.heal()
        brokers.close()
        kit.close()


@pytest.fixture(scope="module")
def outage(cluster, bootstrap_servers, impl_path, pytestconfig):
    kit, brokers, run, call = _start(cluster, bootstrap_servers, impl_path, pytestconfig, "outage",
                                     make_messages(OUTAGE_MESSAGES, "out"), OUTAGE_DELIVERY_TIMEOUT_S)
    followers: list[int] = []
    try:
        def take_followers_down():
            if not until(lambda: brokers.committed(run.topic) >= OUTAGE_AT, 20):
                return (f"20 s after {OUTAGE_AT} messages were handed over, the cluster had committed only "
                        f"{brokers.committed(run.topic)}")
            run.old_leader = brokers.leader(run.topic)
            followers.extend(n for n in brokers.cluster.node_ids if n != run.old_leader)
            brokers.take_down(*followers)
            return None

        run.stream = Stream(run.messages, {OUTAGE_AT: take_followers_down})
        # Long enough for the last message's timeout and the late margin (the stream itself takes ~1 s).
        run.deadline_s = OUTAGE_DELIVERY_TIMEOUT_S + GIVE_UP_LATE_MARGIN_S + 7
        run.returned, run.result, run.error = run_with_deadline(call, run.deadline_s)
        run.closed = True
        during = set(run.values[OUTAGE_AT:])
        acked_during = [v for v in run.acked if v in during]
        if followers and acked_during:
            run.demo = show_the_loss(kit, brokers, run.topic, run.old_leader, followers, acked_during)
        brokers.heal((run.topic,))
        yield run
    finally:
        brokers.heal()
        brokers.close()
        kit.close()


# ------------------------------------------------------------------------------------ shared judgements


def _scenario_ran(run: Run, what: str) -> None:
    if run.stream is not None and run.stream.problem:
        explain(did=run.call(),
                saw=f"{run.stream.problem} (your function had taken {run.stream.handed_over} messages)",
                expected=f"each message to reach the cluster soon after your function takes it, so that {what}",
                nudge="`messages` is a live stream: produce each message as you receive it and let the producer "
                "send in the background (poll() serves delivery callbacks).")
    if run.error is not None:
        explain(did=run.call(), saw=f"publish raised {type(run.error).__name__}: {str(run.error)[:300]}",
                expected="it returns the list of messages that could not be delivered, and raises nothing for them",
                nudge="a failed delivery is data for the caller, not a crash: collect it from the delivery "
                "report and return it.")
    if not run.returned:
        explain(did=run.call(), saw=f"publish had not returned {run.deadline_s:g} s later",
                expected=f"it gives up on undeliverable messages after about {run.delivery_timeout_s:g} s and "
                "returns",
                nudge="which producer setting bounds how long a message may wait for its acknowledgement?")
    if not isinstance(run.result, list) or not all(isinstance(v, str) for v in run.result):
        explain(did=run.call(), saw=f"publish returned {run.result!r:.200}",
                expected="a list of the values (str, as you were given them) of the messages that were not "
                "delivered; [] when none", seen_in="your function's return value")
    if run.callback_types - {"str"}:
        explain(did=run.call(), saw=f"on_acknowledged was called with {', '.join(sorted(run.callback_types))}",
                expected="on_acknowledged(value) with the message's value, the str you were given",
                seen_in="the on_acknowledged calls")


def _reported_twice(run: Run) -> None:
    known = set(run.values)
    strangers = [v for v in run.acked + run.failed() if v not in known]
    if strangers:
        explain(did=run.call(), saw=f"{len(strangers)} values reported that are not values of the stream "
                f"(e.g. {strangers[:3]})", expected="on_acknowledged and the returned list name messages by "
                "their value", seen_in="the on_acknowledged calls and your function's return value")
    for what, values in (("acknowledged (on_acknowledged)", run.acked), ("returned as failed", run.failed())):
        again = sorted(v for v, n in Counter(values).items() if n > 1)
        if again:
            explain(did=run.call(), saw=f"{len(again)} messages were {what} more than once (e.g. {again[:3]})",
                    expected="each message reported once", nudge="one delivery report per message decides "
                    "what became of it: report it there, and only there.",
                    seen_in="the on_acknowledged calls and your function's return value")
    both = sorted(set(run.acked) & set(run.failed()))
    if both:
        explain(did=run.call(), saw=f"{len(both)} messages were both acknowledged and returned as failed "
                f"(e.g. {both[:3]})", expected="each message either acknowledged or returned as failed, never both",
                nudge="one delivery report per message decides which it is.")


# ------------------------------------------------------------------------------------ the leader fails


def test_no_acknowledged_message_is_lost_when_the_leader_fails(failover):
    """Every message acknowledged before, during and after a leader failure is on the new leader."""
    run = failover
    if run.stream is not None and run.stream.problem:
        _scenario_ran(run, "the leader can fail mid-stream")
    if run.new_leader is None:
        pytest.fail("The cluster elected no new leader within 30 s of the old one going down (infrastructure).",
                    pytrace=False)
    if not run.acked:
        explain(did=run.call() + f"; after {FAILOVER_FREEZE_AT} committed messages the leader (broker "
                f"{run.old_leader}) went down", saw="on_acknowledged was never called",
                expected="on_acknowledged(value) for every message the cluster acknowledged",
                nudge="the delivery report (on_delivery) is where the cluster's answer arrives.")
    gone = [v for v in run.values if v in set(run.acked) and v not in run.present]
    if gone:
        explain(did=run.call() + f"; after {FAILOVER_FREEZE_AT} committed messages the leader (broker "
                f"{run.old_leader}) went down and broker {run.new_leader} took over; then the check read the "
                "partition from the new leader",
                saw=f"{len(gone)} of the {len(set(run.acked))} messages you reported as acknowledged are not "
                f"there (e.g. {gone[:3]})",
                expected="every acknowledged message on the new leader",
                nudge="an acknowledgement is a promise about copies. How many brokers had the message when yours "
                "was sent, and which of them can become leader?")


def test_the_stream_survives_a_leader_failover(failover):
    """A leader failure mid-stream costs no message: each one is acknowledged once a new leader takes over."""
    run = failover
    _scenario_ran(run, "the leader can fail mid-stream")
    _reported_twice(run)
    failed = run.failed()
    took = f"{run.downtime_s:.1f} s" if run.downtime_s else "a few seconds"
    if failed:
        explain(did=run.call() + f"; the leader (broker {run.old_leader}) went down after {FAILOVER_FREEZE_AT} "
                f"messages and broker {run.new_leader} took over within {took}",
                saw=f"publish returned {len(failed)} messages as failed (e.g. {failed[:3]})",
                expected=f"every message acknowledged: the delivery timeout ({FAILOVER_DELIVERY_TIMEOUT_S:g} s) "
                "leaves plenty of time for the new leader",
                nudge="a lost connection or 'not the leader' is a retriable error. What does your producer do with "
                "a request that was in flight when the leader died?")
    if run.wrong_keys:
        value, key = run.wrong_keys[0]
        explain(did=run.call() + "; then the check read the partition back",
                saw=f"{len(run.wrong_keys)} records carry another key than their message's (e.g. {value!r} has key "
                f"{key!r})", expected="each message with its key, as UTF-8 bytes",
                nudge="produce(topic, key=..., value=...): both encoded as UTF-8.")
    unaccounted = [v for v in run.values if v not in set(run.acked) and v not in set(failed)]
    if unaccounted:
        explain(did=run.call() + f"; the leader (broker {run.old_leader}) went down mid-stream",
                saw=f"{len(unaccounted)} messages were neither acknowledged nor returned as failed "
                f"(e.g. {unaccounted[:3]})",
                expected="every message either acknowledged (on_acknowledged) or returned as failed",
                nudge="does your function wait for the delivery report of every message before returning?")


# ------------------------------------------------------------------------------------ two brokers down


def test_nothing_is_acknowledged_while_two_brokers_are_down(outage):
    """With both followers down, no write is acknowledged: only the leader could hold it."""
    run = outage
    if run.stream is not None and run.stream.problem:
        _scenario_ran(run, "two brokers can fail mid-stream")
    during = set(run.values[OUTAGE_AT:])
    acked_during = [v for v in run.acked if v in during]
    if acked_during:
        explain(did=run.call() + f"; after {OUTAGE_AT} committed messages both followers went down, leaving only "
                f"the leader (broker {run.old_leader})",
                saw=f"{len(acked_during)} of the {len(during)} messages sent during the outage were reported as "
                f"acknowledged (e.g. {acked_during[:3]}), although no other broker could have a copy. {run.demo}",
                expected="none acknowledged: with min.insync.replicas=2 a write needs two copies before it counts",
                nudge="which producer setting decides how many replicas must have a write before it is "
                "acknowledged, and where does your code decide that a message was acknowledged?")


def test_refused_writes_are_reported_to_the_caller(outage):
    """Writes the cluster cannot replicate come back to the caller as failed; none is silently dropped."""
    run = outage
    _scenario_ran(run, "two brokers can fail mid-stream")
    _reported_twice(run)
    failed = set(run.failed())
    acked = set(run.acked)
    before = run.values[:OUTAGE_AT]
    not_acked = [v for v in before if v not in acked]
    if not_acked:
        explain(did=run.call() + f"; the first {OUTAGE_AT} messages were committed by all three brokers",
                saw=f"{len(not_acked)} of them were never reported acknowledged (e.g. {not_acked[:3]})",
                expected="on_acknowledged(value) for each of them",
                nudge="the delivery report tells you which messages the cluster acknowledged.")
    silent = [v for v in run.values[OUTAGE_AT:] if v not in failed and v not in acked]
    if silent:
        explain(did=run.call() + f"; after {OUTAGE_AT} messages both followers went down for longer than the "
                "delivery timeout",
                saw=f"{len(silent)} messages sent during the outage were neither acknowledged nor returned as failed "
                f"(e.g. {silent[:3]})",
                expected="each of them in the list publish returns",
                nudge="when the delivery timeout runs out, the delivery report carries an error. Where does it "
                "go in your code?")


def test_gives_up_only_after_the_delivery_timeout(outage):
    """Messages that cannot be replicated are given up on delivery_timeout_s after they were produced, not sooner."""
    run = outage
    _scenario_ran(run, "two brokers can fail mid-stream")
    if run.returned_at is None or run.stream is None or run.stream.last_handed is None:
        return
    waited = run.returned_at - run.stream.last_handed
    timeout = run.delivery_timeout_s
    did = (run.call() + f"; after {OUTAGE_AT} messages both followers went down, so no later message could be "
           "acknowledged; the check timed your function from the moment it took the last message")
    if waited < timeout - GIVE_UP_EARLY_MARGIN_S:
        explain(did=did, saw=f"publish returned {waited:.1f} s after it took the last message",
                expected=f"it keeps trying each message for delivery_timeout_s={timeout:g} s after producing it, so "
                f"it returns no sooner than {timeout:g} s after the last one",
                nudge="which producer setting bounds how long a message may wait for its acknowledgement, and in "
                "what unit? Do not give up sooner than the caller asked: the cluster may recover in time.",
                seen_in="the clock")
    if waited > timeout + GIVE_UP_LATE_MARGIN_S:
        explain(did=did, saw=f"publish returned {waited:.1f} s after it took the last message",
                expected=f"it gives up on a message delivery_timeout_s={timeout:g} s after producing it and "
                "returns then (a second or so later)",
                nudge="which producer setting bounds how long a message may wait, retries included, and in what "
                "unit?", seen_in="the clock")


def test_acknowledgements_are_reported_while_publishing(failover):
    """Acknowledgements reach on_acknowledged while the stream goes on, not only once it has ended."""
    run = failover
    _scenario_ran(run, "the leader can fail mid-stream")
    if run.acked_by_cut == 0:
        explain(did=run.call() + f"; the cluster had acknowledged the first {FAILOVER_FREEZE_AT} messages; "
                f"{FAILOVER_CUT_AT - FAILOVER_FREEZE_AT} messages later, your function asked for message "
                f"#{FAILOVER_CUT_AT}", saw="on_acknowledged had not been called once by then",
                expected="each acknowledgement reported soon after it arrives, while you go on publishing",
                nudge="delivery reports wait in the producer until your code serves them: flush() does at the "
                "end, and poll() does at any time without blocking.", seen_in="the on_acknowledged calls")
