"""Hidden checks for kata-07 (lag). Never shown to learners.

Each check builds a real situation on the broker with a real consumer group (members that read and
commit, a member that hangs, a group left behind, a producer writing while a slow member commits,
a member working off a backlog, a caught-up group, an empty topic), then compares the learner's
numbers with what the broker holds: the group's committed offsets, the partitions' log start offsets
and high watermarks, and the group's members. diagnose() is timed: its samples must be interval_s apart.
"""

import threading
import time

import pytest
from _kata07_support import (
    Broker,
    Member,
    SteadyProducer,
    call_diagnose,
    call_measure,
    check_verdict,
    commit_as_group,
    compare_with_broker,
    delete_before,
    produce_to_partitions,
    within,
)

from grader.kit import explain, wait_for


def _committed(report: dict) -> dict:
    return {p: r["committed"] for p, r in report["partitions"].items()}


def _require_members(broker: Broker, group: str, want: int) -> None:
    # The situation itself must hold, or the check proves nothing: this is the check's own setup.
    if broker.members(group) != want:
        pytest.fail(f"check setup: the group {group} should have {want} member(s) and has "
                    f"{broker.members(group)}; please report this", pytrace=False)


def _diagnose_static(impl, kafka, broker, group, topic, interval, did, verdict, nudge):
    """Nothing moves during the call: both samples must equal the broker's numbers exactly."""
    before = broker.view(group)
    result = call_diagnose(impl, kafka, group, topic, interval)
    after = broker.view(group)
    did += f", then called diagnose(interval_s={interval})"
    compare_with_broker(result["first"], before, did + " (its first sample)")
    compare_with_broker(result["second"], after, did + " (its second sample)")
    check_verdict(result, did, *verdict, nudge=nudge)
    return result


def _diagnose_moving(impl, kafka, broker, group, topic, interval, did, verdict, nudge):
    """The group or the topic moves during the call: each number lies between the broker's readings."""
    before = broker.view(group)
    result = call_diagnose(impl, kafka, group, topic, interval)
    after = broker.view(group)
    did += f", and called diagnose(interval_s={interval})"
    within(result["first"], before, after, did + " (its first sample)")
    within(result["second"], before, after, did + " (its second sample)")
    # Members commit partition by partition: "uncommitted" must agree with the second sample itself.
    status, members = verdict
    uncommitted = sorted(p for p, r in result["second"]["partitions"].items() if r["committed"] is None)
    check_verdict(result, did, status, members, uncommitted, nudge=nudge)
    return result, did


def test_lag_matches_committed_offsets(kafka, impl):
    """measure_lag() gives each partition's committed offset, end and lag, and the total, as the broker does."""
    topic = kafka.create_topic(partitions=4)
    produce_to_partitions(kafka, topic, {0: 12, 1: 9, 2: 15, 3: 6})
    group = kafka.unique("billing")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, 4)
    try:
        # The member fetches far ahead of what it commits: its own position is not the group's progress.
        # It stays in the group, idle, while measure_lag() runs; offset 0 on partition 3 is a real commit.
        member.consume_exactly({0: 5, 1: 9, 2: 3})
        member.commit({3: 0})
        before = broker.view(group)
        report = call_measure(impl, kafka, group, topic)
        after = broker.view(group)
    finally:
        member.close()
        broker.close()
    did = (f"produced 12/9/15/6 records to partitions 0/1/2/3; a member of group {group} read ahead, committed "
           "5/9/3/0 of them and stayed idle in the group; then called measure_lag()")
    moved = {p: (before[p].committed, after[p].committed) for p in before
             if before[p].committed != after[p].committed}
    if moved:
        explain(did=did, saw=f"during measure_lag() the group's committed offsets changed: {moved} (before, after)",
                expected="measuring leaves the group exactly as it was",
                nudge="a consumer that uses the group's id to read (and auto-commits) becomes part of the group "
                "you are measuring. Which client can ask about a group without joining it?")
    compare_with_broker(report, before, did)


def test_partition_without_commit_counts_its_whole_log(kafka, impl):
    """A partition the group never committed on counts everything still in its log as lag."""
    topic = kafka.create_topic(partitions=5)
    produce_to_partitions(kafka, topic, {0: 10, 1: 10, 2: 10, 3: 4})  # partition 4 stays empty
    group = kafka.unique("audit")
    commit_as_group(kafka, group, topic, {0: 4, 1: 10})  # 2, 3 and 4: never committed on
    # Retention at work: the oldest records of partitions 1 and 2 are deleted.
    delete_before(kafka, topic, 1, 3)
    delete_before(kafka, topic, 2, 6)
    broker = Broker(kafka, topic, 5)
    try:
        wait_for(lambda: broker.view(group)[2].start == 6, 15, "partition 2 to start at offset 6 after delete_records")
        before = broker.view(group)
        report = call_measure(impl, kafka, group, topic)
    finally:
        broker.close()
    did = (f"produced 10/10/10/4/0 records to partitions 0-4; group {group} committed 4 on partition 0 and 10 on "
           "partition 1, nothing elsewhere; the first 3 records of partition 1 and the first 6 of partition 2 "
           "were deleted; called measure_lag()")
    compare_with_broker(report, before, did)


def test_empty_topic_and_unknown_group(kafka, impl):
    """An empty topic and a group that never existed give zeros and "no-commit"; a missing topic raises."""
    topic = kafka.create_topic(partitions=2)
    group = kafka.unique("nobody")
    broker = Broker(kafka, topic, 2)
    try:
        did = f"created an empty 2-partition topic; group {group} has never existed; called measure_lag()"
        compare_with_broker(call_measure(impl, kafka, group, topic), broker.view(group), did)
        missing = kafka.unique("no-such-topic")
        try:
            report = impl.measure_lag(kafka.bootstrap_servers, group, missing)
        except Exception:  # the expected outcome: there is nothing to measure
            pass
        else:
            explain(did=f"called measure_lag(bootstrap, {group!r}, {missing!r}) on a topic that does not exist",
                    saw=f"it returned {report!r:.200}", seen_in="your function's return value",
                    expected="an exception: a topic that does not exist has no lag to report",
                    nudge="what does the topic's metadata say when it does not exist? A report of \"no lag\" "
                    "would hide a typo in a monitoring setup.")
        _diagnose_static(impl, kafka, broker, group, topic, 0.5,
                         f"on an empty 2-partition topic and group {group}, which has never existed",
                         ("no-commit", 0, [0, 1]),
                         "the rules apply in order, and the first one asks only about commits: there are none. "
                         "An unknown group is not an error, it has no offsets and no members.")
    finally:
        broker.close()


def test_group_without_commits_is_reported(kafka, impl):
    """diagnose() says "no-commit" for a group whose member reads but has never committed."""
    topic = kafka.create_topic(partitions=3)
    produce_to_partitions(kafka, topic, {0: 10, 1: 10, 2: 10})
    group = kafka.unique("newcomer")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, 3)
    try:
        member.run_in_background(per_second=None, commit=False)
        wait_for(lambda: member.owned() == 3 and member.processed >= 30, 30,
                 "the check's member to join and read every record")
        _require_members(broker, group, 1)
        _diagnose_static(impl, kafka, broker, group, topic, 0.5,
                         f"let one member of group {group} read all 30 records of a 3-partition topic without ever "
                         "committing", ("no-commit", 1, [0, 1, 2]),
                         "reading is not committing: the broker holds no offset for this group at all, whatever "
                         "its member has read. What does a partition without a commit look like in the offsets you "
                         "fetch?")
    finally:
        member.close()
        broker.close()


def test_stuck_member_is_stalled(kafka, impl):
    """diagnose() says "stalled" for a live member that stopped committing, even while new records arrive."""
    topic = kafka.create_topic(partitions=3)
    produce_to_partitions(kafka, topic, {0: 20, 1: 20, 2: 20})
    group = kafka.unique("stuck")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, 3)
    producer = None
    try:
        # Reads and commits a little, then hangs: still a member (its heartbeats go on), no progress,
        # while the producers keep writing (so the lag grows, and the group is still "stalled" first).
        member.consume_exactly({0: 5, 1: 8, 2: 2})
        _require_members(broker, group, 1)
        producer = SteadyProducer(kafka, topic, 3, per_second=60)
        wait_for(lambda: len(producer.acked) >= 6, 15, "the check's producer to write its first records")
        result, did = _diagnose_moving(
            impl, kafka, broker, group, topic, 1.0,
            f"let one member of group {group} commit 5/8/2 of 20 records per partition and then hang (still in "
            "the group) while 60 records/s kept arriving", ("stalled", 1),
            "the group has a member, and its offsets do not move: being in the group is not the same as making "
            "progress. The rules apply in order: which one comes before the growing lag?")
    finally:
        if producer is not None:
            producer.close()
        member.close()
        broker.close()
    apart = producer.seconds_between(result["first"], result["second"])
    if apart < 0.5:
        explain(did=did, seen_in="the end offsets in your two samples",
                saw=f"end offsets {[result['first']['partitions'][p]['end'] for p in range(3)]} then "
                f"{[result['second']['partitions'][p]['end'] for p in range(3)]}: the records between them were "
                f"written within {apart:.2f}s",
                expected="two samples about interval_s (1.0s) apart: at 60 records/s, about 60 records between them",
                nudge="take the first sample, then wait, then take the second one: both read fresh from the broker.")


def test_abandoned_group_is_stalled(kafka, impl):
    """diagnose() says "stalled", with the members the group has at the end (0), for a group left with lag behind."""
    topic = kafka.create_topic(partitions=4)
    produce_to_partitions(kafka, topic, {0: 20, 2: 20})  # partitions 1 and 3 stay empty
    group = kafka.unique("abandoned")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, 4)
    interval = 1.2
    left: dict = {}

    def leave() -> None:
        # An event scheduled inside diagnose()'s interval, after its first sample: the last member leaves.
        time.sleep(0.3)
        member.close()
        left["at"] = time.monotonic()

    try:
        member.consume_exactly({0: 19, 2: 20})  # one record of lag left; partitions 1 and 3: never committed on
        _require_members(broker, group, 1)
        leaver = threading.Thread(target=leave, daemon=True)
        started = time.monotonic()
        leaver.start()
        before = broker.view(group)
        result = call_diagnose(impl, kafka, group, topic, interval)
        leaver.join(15)
        after = broker.view(group)
    finally:
        member.close()
        broker.close()
    did = (f"let the only member of group {group} commit 19 and 20 of 20 records on partitions 0 and 2 (nothing "
           f"on 1 and 3, which are empty) and hang, a single record of lag left; called diagnose(interval_s="
           f"{interval}) and, 0.3s into it, the member left the group")
    compare_with_broker(result["first"], before, did + " (its first sample)")
    compare_with_broker(result["second"], after, did + " (its second sample)")
    # Only when the member had surely left before the second sample could start do its members count.
    members = 0 if left.get("at", float("inf")) - started < interval else result["members"]
    check_verdict(result, did, "stalled", members, [1, 3],
                  nudge="lag that does not move between two samples means nobody is making progress, even a "
                  "single record, and even when some partitions were never committed on; the member count is the "
                  "group's when the second sample is taken.")


def test_rewound_partition_is_not_stalled(kafka, impl):
    """diagnose() compares committed offsets partition by partition: one moving forward, one rewound, is not stalled."""
    topic = kafka.create_topic(partitions=2)
    produce_to_partitions(kafka, topic, {0: 10, 1: 10})
    group = kafka.unique("rewound")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, 2)
    interval = 0.8

    def move() -> None:
        # Inside diagnose()'s interval, after its first sample: the member commits 3 more records on
        # partition 0 and rewinds partition 1 by 3 to process them again. Offsets and total lag keep
        # their sums; only a partition-by-partition comparison sees that the group moved.
        time.sleep(0.4)
        member.commit({0: 7, 1: 5})

    try:
        member.consume_exactly({0: 4, 1: 8})
        _require_members(broker, group, 1)
        mover = threading.Thread(target=move, daemon=True)
        before = broker.view(group)
        mover.start()
        result = call_diagnose(impl, kafka, group, topic, interval)
        mover.join(15)
        after = broker.view(group)
    finally:
        member.close()
        broker.close()
    did = (f"let the only member of group {group} commit 4 and 8 of the 10 records of partitions 0 and 1; called "
           f"diagnose(interval_s={interval}) and, 0.4s into it, the member committed 7 on partition 0 and rewound "
           "partition 1 to 5 (to process 3 records again)")
    compare_with_broker(result["first"], before, did + " (its first sample)")
    compare_with_broker(result["second"], after, did + " (its second sample)")
    check_verdict(result, did, "ok", 1, [],
                  nudge="a committed offset changed on each partition between your samples, so the group is not "
                  "stalled, even though the sums of the offsets and of the lags stayed the same: compare the "
                  "offsets partition by partition.")


def test_caught_up_group_is_ok(kafka, impl):
    """diagnose() says "ok" for a group that has read and committed everything, even though nothing moves."""
    topic = kafka.create_topic(partitions=2)
    produce_to_partitions(kafka, topic, {0: 5, 1: 7})
    group = kafka.unique("done")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, 2)
    try:
        member.consume_exactly({0: 5, 1: 7})
        _require_members(broker, group, 1)
        _diagnose_static(impl, kafka, broker, group, topic, 0.5,
                         f"let the only member of group {group} read and commit all 5/7 records of a 2-partition "
                         "topic and wait, idle, for more", ("ok", 1, []),
                         "offsets that do not move are only a problem while there is lag to work off.")
    finally:
        member.close()
        broker.close()


def test_slow_consumer_is_falling_behind(kafka, impl):
    """diagnose() says "falling-behind" while a member commits, but slower than records arrive."""
    topic = kafka.create_topic(partitions=3)
    group = kafka.unique("slow")
    producer = SteadyProducer(kafka, topic, 3, per_second=60)
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, 3)
    try:
        member.run_in_background(per_second=8, commit=True)  # 8 records/s against 60 arriving
        wait_for(lambda: member.commits >= 3, 30, "the check's slow member to commit its first records")
        result, did = _diagnose_moving(
            impl, kafka, broker, group, topic, 1.0,
            f"produced 60 records/s to a 3-partition topic while the only member of group {group} processed and "
            "committed 8 records/s", ("falling-behind", 1),
            "the committed offsets move, so the member is working; what does the change in total lag between "
            "the two samples say about its speed?")
    finally:
        member.close()
        producer.close()
        broker.close()
    if member.error:
        pytest.fail(f"check setup: the check's member failed: {member.error}; please report this", pytrace=False)


def test_catching_up_consumer_is_ok(kafka, impl):
    """diagnose() says "ok" for a member that is working off a backlog, even while lag is still high."""
    topic = kafka.create_topic(partitions=3)
    produce_to_partitions(kafka, topic, {0: 150, 1: 150, 2: 150})
    group = kafka.unique("catchup")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, 3)
    try:
        member.run_in_background(per_second=150, commit=True)
        wait_for(lambda: member.commits >= 5, 30, "the check's member to commit its first records")
        result, did = _diagnose_moving(
            impl, kafka, broker, group, topic, 1.0,
            f"produced a backlog of 450 records and let the only member of group {group} work it off (committing as "
            "it goes, nothing new arriving)", ("ok", 1),
            "a large lag is not a problem by itself when it shrinks. Which direction did the total move between "
            "your two samples?")
    finally:
        member.close()
        broker.close()
    if member.error:
        pytest.fail(f"check setup: the check's member failed: {member.error}; please report this", pytrace=False)
    if _committed(result["first"]) == _committed(result["second"]):
        explain(did=did, saw=f"your two samples show the same committed offsets {_committed(result['first'])}",
                expected="committed offsets that advanced between the samples (the member commits ~150/s)",
                nudge="are both samples read fresh from the broker, interval_s apart?", seen_in="your samples")
