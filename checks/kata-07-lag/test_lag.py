"""Hidden checks for kata-07 (lag). Never shown to learners.

Each check builds a real situation on the broker with a real consumer group (members that read and
commit, a member that stops, a group left behind, a producer writing while a slow member commits,
a member working off a backlog), then compares the learner's numbers with what the broker holds:
the group's committed offsets (list_consumer_group_offsets, through a consumer's committed()), the
partitions' log start offsets and high watermarks, and the group's members (describe_consumer_groups).
"""

import pytest
from _kata07_support import (
    INTERVAL_S,
    Broker,
    Member,
    SteadyProducer,
    call_diagnose,
    call_measure,
    compare_with_broker,
    produce_to_partitions,
    within,
)
from confluent_kafka import TopicPartition

from grader.kit import explain, wait_for

PARTITIONS = 3


def _summary(result: dict) -> str:
    return (f"status {result['status']!r}, members {result['members']}, uncommitted {result['uncommitted']}, "
            f"total lag {result['first']['total']} then {result['second']['total']}")


def _committed(report: dict) -> dict:
    return {p: r["committed"] for p, r in report["partitions"].items()}


def _require_members(broker: Broker, group: str, want: int) -> None:
    # The situation itself must hold, or the check proves nothing: this is the check's own setup.
    if broker.members(group) != want:
        pytest.fail(f"check setup: the group {group} should have {want} member(s) and has "
                    f"{broker.members(group)}; please report this", pytrace=False)


def test_lag_matches_committed_offsets(kafka, impl):
    """measure_lag() gives each partition's committed offset, end and lag, and the total, as the broker does."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    produce_to_partitions(kafka, topic, {0: 12, 1: 9, 2: 15})
    group = kafka.unique("billing")
    member = Member(kafka, topic, group)
    try:
        # The member fetches far ahead of what it commits: its own position is not the group's progress.
        member.consume_exactly({0: 5, 1: 9, 2: 3})
    finally:
        member.close()
    broker = Broker(kafka, topic, PARTITIONS)
    try:
        before = broker.view(group)
        report = call_measure(impl, kafka, group, topic)
        after = broker.view(group)
    finally:
        broker.close()
    did = (f"produced 12/9/15 records to partitions 0/1/2, let a member of group {group} read and commit 5/9/3 "
           "of them and leave, then called measure_lag()")
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
    topic = kafka.create_topic(partitions=PARTITIONS)
    produce_to_partitions(kafka, topic, {0: 10, 1: 10, 2: 10})
    group = kafka.unique("audit")
    member = Member(kafka, topic, group)
    try:
        member.consume_exactly({0: 4, 1: 10})  # partition 2: read by nobody, committed by nobody
    finally:
        member.close()
    # Retention at work: the oldest 6 records of partition 2 are deleted, its log now starts at offset 6.
    kafka.admin.delete_records([TopicPartition(topic, 2, 6)])[TopicPartition(topic, 2, 6)].result(timeout=15)
    broker = Broker(kafka, topic, PARTITIONS)
    try:
        wait_for(lambda: broker.view(group)[2].start == 6, 15, "partition 2 to start at offset 6 after delete_records")
        before = broker.view(group)
        report = call_measure(impl, kafka, group, topic)
    finally:
        broker.close()
    did = (f"produced 10 records to each of 3 partitions; group {group} committed 4 on partition 0 and 10 on "
           "partition 1, nothing on partition 2, whose first 6 records were then deleted; called measure_lag()")
    compare_with_broker(report, before, did)


def test_group_without_commits_is_reported(kafka, impl):
    """diagnose() says "no-commit" for a group whose member reads but has never committed."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    produce_to_partitions(kafka, topic, {0: 10, 1: 10, 2: 10})
    group = kafka.unique("newcomer")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, PARTITIONS)
    try:
        member.run_in_background(per_second=None, commit=False)
        wait_for(lambda: member.owned() == PARTITIONS and member.processed >= 30, 30,
                 "the check's member to join and read every record")
        _require_members(broker, group, 1)
        result, _ = call_diagnose(impl, kafka, group, topic)
        view = broker.view(group)
    finally:
        member.close()
        broker.close()
    did = (f"let one member of group {group} read all 30 records of a 3-partition topic without ever committing, "
           f"then called diagnose(interval_s={INTERVAL_S})")
    if result["status"] != "no-commit" or sorted(result["uncommitted"]) != [0, 1, 2] or result["members"] != 1:
        explain(did=did, saw=_summary(result),
                expected="status 'no-commit', members 1, uncommitted [0, 1, 2]",
                nudge="reading is not committing: the broker holds no offset for this group at all, whatever its "
                "member has read. What does a partition without a commit look like in the offsets you fetch?")
    compare_with_broker(result["second"], view, did)


def test_stuck_member_is_stalled(kafka, impl):
    """diagnose() says "stalled" for a group whose live member stopped committing while lag remains."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    produce_to_partitions(kafka, topic, {0: 20, 1: 20, 2: 20})
    group = kafka.unique("stuck")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, PARTITIONS)
    try:
        # Reads and commits a little, then hangs: still a member (its heartbeats go on), no progress.
        member.consume_exactly({0: 5, 1: 8, 2: 2})
        _require_members(broker, group, 1)
        result, _ = call_diagnose(impl, kafka, group, topic)
        view = broker.view(group)
    finally:
        member.close()
        broker.close()
    did = (f"let one member of group {group} commit 5/8/2 of 20 records per partition and then hang (still in the "
           f"group), then called diagnose(interval_s={INTERVAL_S})")
    if result["status"] != "stalled" or result["members"] != 1:
        explain(did=did, saw=_summary(result), expected="status 'stalled', members 1",
                nudge="the group has a member, and its lag does not move: being in the group is not the same as "
                "making progress. What did the committed offsets do between your two samples?")
    compare_with_broker(result["second"], view, did)


def test_abandoned_group_is_stalled(kafka, impl):
    """diagnose() says "stalled", with 0 members, for a group that everybody left with lag behind."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    produce_to_partitions(kafka, topic, {0: 20, 1: 20, 2: 20})
    group = kafka.unique("abandoned")
    member = Member(kafka, topic, group)
    try:
        member.consume_exactly({0: 7, 1: 3, 2: 11})
    finally:
        member.close()  # the last member leaves: the group is empty, its offsets stay
    broker = Broker(kafka, topic, PARTITIONS)
    try:
        _require_members(broker, group, 0)
        result, _ = call_diagnose(impl, kafka, group, topic)
        view = broker.view(group)
    finally:
        broker.close()
    did = (f"let a member of group {group} commit 7/3/11 of 20 records per partition and leave the group, then "
           f"called diagnose(interval_s={INTERVAL_S})")
    if result["status"] != "stalled" or result["members"] != 0:
        explain(did=did, saw=_summary(result), expected="status 'stalled', members 0",
                nudge="lag that does not move between two samples means nobody is making progress; the member "
                "count then tells whether somebody is stuck or nobody is there.")
    compare_with_broker(result["second"], view, did)


def test_slow_consumer_is_falling_behind(kafka, impl):
    """diagnose() says "falling-behind" while a member commits, but slower than records arrive."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    group = kafka.unique("slow")
    producer = SteadyProducer(kafka, topic, PARTITIONS, per_second=60)
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, PARTITIONS)
    try:
        member.run_in_background(per_second=8, commit=True)  # 8 records/s against 60 arriving
        wait_for(lambda: member.commits >= 3, 30, "the check's slow member to commit its first records")
        before = broker.view(group)
        result, _ = call_diagnose(impl, kafka, group, topic)
        after = broker.view(group)
    finally:
        member.close()
        producer.close()
        broker.close()
    did = (f"produced 60 records/s to a 3-partition topic while the only member of group {group} processed and "
           f"committed 8 records/s, and called diagnose(interval_s={INTERVAL_S})")
    if member.error:
        pytest.fail(f"check setup: the check's member failed: {member.error}; please report this", pytrace=False)
    within(result["first"], before, after, did + " (its first sample)")
    within(result["second"], before, after, did + " (its second sample)")
    if result["second"]["total"] <= result["first"]["total"]:
        explain(did=did, saw=f"your two samples: total lag {result['first']['total']} then "
                f"{result['second']['total']}",
                expected="a larger total in the second sample: records arrive 7 times faster than they are processed",
                nudge="are the two samples taken interval_s apart, each with fresh end offsets?")
    if result["status"] != "falling-behind" or result["members"] != 1:
        explain(did=did, saw=_summary(result), expected="status 'falling-behind', members 1",
                nudge="the committed offsets move, so the member is working; what does the change in total lag "
                "between the two samples say about its speed?")


def test_catching_up_consumer_is_ok(kafka, impl):
    """diagnose() says "ok" for a member that is working off a backlog, even while lag is still high."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    produce_to_partitions(kafka, topic, {0: 150, 1: 150, 2: 150})
    group = kafka.unique("catchup")
    member = Member(kafka, topic, group)
    broker = Broker(kafka, topic, PARTITIONS)
    try:
        member.run_in_background(per_second=150, commit=True)
        wait_for(lambda: member.commits >= 5, 30, "the check's member to commit its first records")
        before = broker.view(group)
        result, _ = call_diagnose(impl, kafka, group, topic)
        after = broker.view(group)
    finally:
        member.close()
        broker.close()
    did = (f"produced a backlog of 450 records, let the only member of group {group} work it off (committing as "
           f"it goes, nothing new arriving) and called diagnose(interval_s={INTERVAL_S})")
    if member.error:
        pytest.fail(f"check setup: the check's member failed: {member.error}; please report this", pytrace=False)
    within(result["first"], before, after, did + " (its first sample)")
    within(result["second"], before, after, did + " (its second sample)")
    if result["status"] != "ok" or result["members"] != 1:
        explain(did=did, saw=_summary(result), expected="status 'ok', members 1",
                nudge="a large lag is not a problem by itself when it shrinks. Which direction did the total move "
                "between your two samples?")
    if _committed(result["first"]) == _committed(result["second"]) and result["second"]["total"] > 0:
        explain(did=did, saw=f"your two samples show the same committed offsets {_committed(result['first'])}",
                expected="committed offsets that advanced between the samples (the member commits ~150/s)",
                nudge="are both samples read fresh from the broker, interval_s apart?")
