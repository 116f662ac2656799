"""Hidden checks for kata-15 (reset and replay a consumer group by time). Never shown to learners."""

import time
from datetime import datetime, timedelta, timezone

import pytest
from confluent_kafka import TopicPartition

from grader.kit import explain, pictures

# Milliseconds after BASE at which each partition's records were written (one record each, in
# offset order). The same instant lands on a different offset in every partition, and the records
# around +40.25 s are milliseconds apart: a lookup in seconds, or one that drops the milliseconds,
# or one that skips a record exactly at the instant, lands elsewhere.
LAYOUT = {
    0: [0, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 90_000],
    1: [5_000, 39_999, 40_001, 40_250, 60_000, 61_000, 62_000],
    2: [1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 40_100, 45_000, 80_000],
}
ENDS = {p: len(ts) for p, ts in LAYOUT.items()}
PREVIOUS = {0: 1, 1: 1}        # where the group had committed before the reset: partition 2 never
TRUNCATED_BEFORE = 3           # delete_records on partition 0 up to this offset (earliest check)
TARGET_MS = 40_250             # the instant most checks reset to
INDIA = timezone(timedelta(hours=5, minutes=30))
PACIFIC = timezone(timedelta(hours=-7))


@pytest.fixture
def shop(kafka):
    """A 3-partition topic with records at known timestamps, and a group that committed PREVIOUS."""
    topic = kafka.create_topic(partitions=3)
    # A recent base (records older than retention.ms would be deleted), on a whole second.
    base_ms = (int(time.time()) - 3600) * 1000
    producer = kafka.producer()
    for partition, offsets_ms in LAYOUT.items():
        for n, ms in enumerate(offsets_ms):
            producer.produce(topic, partition=partition, key=f"p{partition}-{n}",
                             value=f"event {n} of partition {partition} at +{ms} ms", timestamp=base_ms + ms)
    assert producer.flush(30) == 0, "the check could not write its records"
    group = kafka.unique("replayer")
    committer = kafka.consumer(group=group)
    committer.commit(offsets=[TopicPartition(topic, p, o) for p, o in PREVIOUS.items()], asynchronous=False)
    committer.close()
    return topic, group, base_ms


def at(base_ms: int, ms: int, tz: timezone = timezone.utc) -> datetime:
    """BASE + ms as an aware datetime in the time zone tz (the same instant whatever the zone)."""
    return datetime(1970, 1, 1, tzinfo=timezone.utc).astimezone(tz) + timedelta(milliseconds=base_ms + ms)


def expected_for(ms: int) -> dict[int, int]:
    """First offset whose timestamp is at or after BASE + ms; the end offset if none."""
    return {p: next((n for n, t in enumerate(ts) if t >= ms), ENDS[p]) for p, ts in LAYOUT.items()}


def datetime_nudge(committed: dict[int, int]) -> str:
    if all(committed.get(p) == 0 for p in LAYOUT):
        return ("every partition went back to its very first record, as if the datetime were decades earlier. In "
                "which unit does Kafka measure record timestamps?")
    kept = [p for p in LAYOUT if committed.get(p, -1001) == PREVIOUS.get(p, -1001)]
    if kept:
        return (f"partition(s) {kept} kept the offset the group had before (or none): was a new offset committed "
                "for every partition of the topic, also those the group never committed on? When no record is at "
                "or after the timestamp, the lookup answers -1, which is not an offset a commit can store.")
    return ("per partition, you want the first offset whose record timestamp is at or after the datetime: the "
            "same instant whatever its time zone, to the millisecond, a record exactly at it included.")


def call_reset(impl, kafka, group, topic, to, did):
    try:
        return impl.reset_offsets(kafka.bootstrap_servers, group, topic, to)
    except NotImplementedError:
        explain(did=did, saw="NotImplementedError: reset_offsets is still the stub", expected="it to reset the group")
    except Exception as exc:  # the learner's code failed: say so in their terms
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}",
                expected="it to commit the new offsets and return them",
                nudge="read the exception: which value did the client or the broker refuse?")


def describe_layout() -> str:
    return "; ".join(f"partition {p}: records at +{', +'.join(f'{t / 1000:g}' for t in ts)} s"
                     for p, ts in LAYOUT.items())


def shown(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def _reset_pictures(committed: dict, want: dict) -> None:
    """Per partition: where the group was reset (C) against the first record at or after the time (E), and the
    records' timestamps, so a reset in the wrong unit or to the wrong side of an instant shows."""
    pictures.attach(pictures.offset_bars(
        "After the reset: C where the group resumes, E where it should (for a time: the first record at or after it)",
        [pictures.bar(p, end=ENDS[p], start=want[p], expected=want[p],
                      committed=committed.get(p) if (committed.get(p) or 0) >= 0 else None) for p in sorted(want)],
        unread="replayed after the reset", before="skipped by the replay"))
    pictures.attach(pictures.lanes("Each partition's records: offset:timestamp after the topic's first second", {
        p: [pictures.lane_record(n, f"+{t / 1000:g}s") for n, t in enumerate(LAYOUT[p])] for p in sorted(want)}))


def compare(kafka, group, topic, returned, want, did, nudge_for) -> None:
    committed = kafka.committed(group, topic)
    wrong = {p: committed.get(p) for p in want if committed.get(p) != want[p]}
    if wrong:
        seen = {p: ("none" if o is not None and o < 0 else o) for p, o in committed.items()}
        _reset_pictures(committed, want)
        explain(did=did + ", then read the group's committed offsets from the broker",
                saw=f"committed offsets per partition: {seen}", expected=f"{want}", nudge=nudge_for(committed))
    if returned != want:
        explain(did=did, saw=f"the broker has the right offsets, but reset_offsets returned {returned!r}",
                expected=f"the committed offsets as {{partition: offset}}: {want}",
                seen_in="your function's return value")


def test_reset_to_datetime_points_each_partition_at_the_first_record_at_or_after_it(kafka, impl, shop):
    """Reset to a datetime commits, on every partition, the first offset whose timestamp is at or after it."""
    topic, group, base_ms = shop
    when = at(base_ms, TARGET_MS, INDIA)
    did = (f"wrote records with explicit timestamps ({describe_layout()}), group {group} had committed "
           f"{PREVIOUS} (nothing on partition 2), then called reset_offsets(bootstrap, group, topic, "
           f"{shown(when)}) (= +40.25 s, in UTC+05:30)")
    returned = call_reset(impl, kafka, group, topic, when, did)
    compare(kafka, group, topic, returned, expected_for(TARGET_MS), did, datetime_nudge)


def test_datetime_after_a_partitions_last_record_means_its_end(kafka, impl, shop):
    """A partition with no record at or after the datetime is reset to its end offset, not left alone."""
    topic, group, base_ms = shop
    when = at(base_ms, 85_000, PACIFIC)
    did = (f"wrote records with explicit timestamps ({describe_layout()}), then called "
           f"reset_offsets(bootstrap, group, topic, {shown(when)}) (= +85 s, in UTC-07:00, after the last record "
           "of partitions 1 and 2)")
    returned = call_reset(impl, kafka, group, topic, when, did)
    compare(kafka, group, topic, returned, expected_for(85_000), did, datetime_nudge)
    when = at(base_ms, 3_600_000)
    did = f"then called reset_offsets(bootstrap, group, topic, {shown(when)}) (= +1 h, after every record)"
    returned = call_reset(impl, kafka, group, topic, when, did)
    compare(kafka, group, topic, returned, dict(ENDS), did, datetime_nudge)


def test_reset_to_earliest_and_latest(kafka, impl, shop):
    """'earliest' and a datetime before every record commit the log start offsets (not 0), 'latest' the ends."""
    topic, group, base_ms = shop
    for future in kafka.admin.delete_records([TopicPartition(topic, 0, TRUNCATED_BEFORE)]).values():
        future.result(timeout=30)
    did = (f"deleted the records of partition 0 before offset {TRUNCATED_BEFORE} (as retention would), then called "
           "reset_offsets(bootstrap, group, topic, 'earliest')")
    returned = call_reset(impl, kafka, group, topic, "earliest", did)
    earliest = {0: TRUNCATED_BEFORE, 1: 0, 2: 0}
    compare(kafka, group, topic, returned, earliest, did,
            lambda committed: "offset 0 of partition 0 no longer exists. Where does a partition start once "
            "retention deleted its oldest records?" if committed.get(0) == 0 else
            "earliest means the first offset still in each partition.")
    did = "then called reset_offsets(bootstrap, group, topic, 'latest')"
    returned = call_reset(impl, kafka, group, topic, "latest", did)
    compare(kafka, group, topic, returned, dict(ENDS), did,
            lambda committed: "latest is the offset the next written record will get: the end of each partition, "
            "one past its last record.")
    when = at(base_ms, -86_400_000, PACIFIC)
    did = f"then called reset_offsets(bootstrap, group, topic, {shown(when)}) (a day before every record)"
    returned = call_reset(impl, kafka, group, topic, when, did)
    compare(kafka, group, topic, returned, earliest, did,
            lambda committed: "every record is at or after that moment: the first one still in each partition is "
            "where the replay starts.")


def test_group_replays_from_the_datetime(kafka, impl, shop):
    """After a reset to a datetime, the group's consumers replay exactly the records from that moment on."""
    topic, group, base_ms = shop
    when = at(base_ms, TARGET_MS)
    did = (f"wrote records with explicit timestamps ({describe_layout()}), called "
           f"reset_offsets(bootstrap, group, topic, {shown(when)}) (= +40.25 s), then consumed with the group")
    call_reset(impl, kafka, group, topic, when, did)
    # auto.offset.reset=latest: a partition without a committed offset replays nothing, as in production.
    consumer = kafka.consumer(group=group, **{"auto.offset.reset": "latest"})
    consumer.subscribe([topic])
    seen: dict[int, list[int]] = {p: [] for p in LAYOUT}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(seen[p] and seen[p][-1] == ENDS[p] - 1 for p in LAYOUT):
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            seen[msg.partition()].append(msg.offset())
    consumer.close()
    for p, offsets_ms in LAYOUT.items():
        want = [n for n, t in enumerate(offsets_ms) if t >= TARGET_MS]
        if seen[p] != want:
            got = [f"offset {o} (+{offsets_ms[o] / 1000:g} s)" for o in seen[p][:4]]
            explain(did=did, saw=f"partition {p} replayed {len(seen[p])} records: {', '.join(got) or 'none'}"
                    f"{'…' if len(seen[p]) > 4 else ''}",
                    expected=f"the {len(want)} records at or after +40.25 s: offsets {want}",
                    nudge="the group's consumers start where the group committed. Did the reset move every "
                    "partition to the first record at or after the datetime?")


def test_naive_datetime_is_refused(kafka, impl, shop):
    """A naive datetime names no moment, and "yesterday" is no reset target: ValueError, nothing changes."""
    topic, group, base_ms = shop
    for to, why in ((at(base_ms, TARGET_MS).replace(tzinfo=None), "which moment is 10:00 without a time zone?"),
                    ("yesterday", "to is 'earliest', 'latest' or an aware datetime")):
        did = f"called reset_offsets(bootstrap, group, topic, {to!r}) on group {group}, which had committed {PREVIOUS}"
        try:
            returned = impl.reset_offsets(kafka.bootstrap_servers, group, topic, to)
        except NotImplementedError:
            explain(did=did, saw="NotImplementedError: reset_offsets is still the stub", expected="it to raise")
        except ValueError:  # the expected outcome: the reset was refused
            pass
        except Exception as exc:
            explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", seen_in="your function",
                    expected=f"ValueError, raised by your own code: {why}",
                    nudge="check what `to` is before you use it, and say clearly what is wrong with it.")
        else:
            explain(did=did, saw=f"it returned {returned!r}", seen_in="your function's return value",
                    expected=f"ValueError: {why}",
                    nudge="a naive datetime is read as the local time of whatever machine runs the code. Refuse it "
                    "rather than guess." if to != "yesterday" else "refuse what you cannot reset to.")
        committed = {p: o for p, o in kafka.committed(group, topic).items() if o >= 0}
        if committed != PREVIOUS:
            explain(did=did, saw=f"it raised, but the group's committed offsets changed to {committed}",
                    expected=f"no change ({PREVIOUS})", nudge="refuse before committing anything.")


def test_reset_refuses_an_active_group(kafka, impl, shop):
    """Resetting a group whose consumers are running raises, and leaves its offsets alone."""
    topic, group, base_ms = shop
    member = kafka.consumer(group=group)
    member.subscribe([topic])
    deadline = time.monotonic() + 30
    while not member.assignment():
        if time.monotonic() > deadline:
            pytest.fail("Timed out after 30s waiting for the check's consumer to join the group.", pytrace=False)
        member.poll(0.2)
    did = "started a consumer in the group (it holds all 3 partitions), then called reset_offsets(..., 'earliest')"
    try:
        impl.reset_offsets(kafka.bootstrap_servers, group, topic, "earliest")
    except NotImplementedError:
        explain(did=did, saw="NotImplementedError: reset_offsets is still the stub", expected="it to raise")
    except Exception:  # the expected outcome: the reset was refused
        raised = True
    else:
        raised = False
    finally:
        member.close()
    committed = {p: o for p, o in kafka.committed(group, topic).items() if o >= 0}
    if committed != PREVIOUS:
        explain(did=did, saw=f"the group's committed offsets changed to {committed}",
                expected=f"no change ({PREVIOUS}) while the group is active",
                nudge="kafka-consumer-groups refuses to reset an active group. Why would a running consumer make "
                "the reset pointless?")
    if not raised:
        explain(did=did, saw="reset_offsets returned normally, but the broker did not store the new offsets "
                f"(still {committed})", expected="an exception: the reset did not happen",
                nudge="a call can succeed while the broker refused each partition. Where does the result say so?")
