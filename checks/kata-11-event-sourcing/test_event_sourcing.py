"""Hidden checks for kata-11 (event sourcing: replay, rebuild, snapshots). Never shown to learners."""

import json
import os
from collections import defaultdict

import pytest
from _kata11_support import declined, diff, fold, histories, make_events, parse

from grader.kit import explain

PARTITIONS = 3
FIRST_BATCH, SECOND_BATCH = 45, 20


def call(did: str, fn, *args, **kwargs):
    """Call learner code; an exception becomes a teaching failure."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        explain(did=did, saw=f"NotImplementedError: {exc}", expected="the function to be implemented")
    except Exception as exc:  # the learner's code failed: say so in their terms
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="it to return normally",
                nudge="read the exception: did the broker refuse something, or did your code trip over a record?")


def append(impl, kafka, topic: str, events: list[dict]) -> None:
    call(f"called append_events(bootstrap, {topic!r}, <{len(events)} events>)",
         impl.append_events, kafka.bootstrap_servers, topic, events)


def catch_up(impl, kafka, topic: str, path, what: str) -> tuple[dict, list[tuple[int, int]]]:
    """Run the learner's catch_up; return its balances and the (partition, offset) of each applied record."""
    seen: list[tuple[int, int]] = []

    def on_event(msg):
        seen.append((msg.partition(), msg.offset()))

    balances = call(f"called catch_up(bootstrap, topic, {os.path.basename(path)!r}, on_event) {what}",
                    impl.catch_up, kafka.bootstrap_servers, topic, str(path), on_event)
    return balances, seen


def end_offsets(kafka, topic: str) -> dict[int, int]:
    consumer = kafka.consumer()
    return {p: kafka.high_watermark(consumer, topic, p) for p in range(PARTITIONS)}


@pytest.fixture
def log(kafka, impl):
    """A 3-partition event log that keeps everything, filled by the learner's append_events."""
    topic = kafka.create_topic(partitions=PARTITIONS, config={"retention.ms": "-1"})
    events = make_events(seed=11, count=FIRST_BATCH)
    assert declined(events) > 0, "test data must exercise the declined-withdrawal rule"
    append(impl, kafka, topic, events)
    return topic, events


def expect_balances(balances, want: dict, did: str, nudge: str) -> None:
    if balances != want:
        explain(did=did, saw=f"balances differ: {diff(balances, want)}",
                expected=f"the balances of a replay of every event in order ({len(want)} accounts)", nudge=nudge)


def expect_all_records(seen: list, ends: dict[int, int], did: str, nudge: str) -> None:
    want = {(p, o) for p, end in ends.items() for o in range(end)}
    got = set(seen)
    if len(seen) != len(got):
        dupes = sorted({x for x in seen if seen.count(x) > 1})
        explain(did=did, saw=f"on_event was called twice for the same record, e.g. (partition, offset) {dupes[:3]}",
                expected="each record applied exactly once", nudge=nudge)
    if got != want:
        missing = sorted(want - got)
        explain(did=did, saw=f"on_event saw {len(got)} of the topic's {len(want)} records; "
                f"never (partition, offset) {missing[:4]}",
                expected="every record of every partition, from offset 0 to the end", nudge=nudge)


def test_each_account_history_on_one_partition(kafka, log):
    """Each account's records are on one partition, keyed by the account, complete and in event order."""
    topic, events = log
    records = kafka.read_all(topic, timeout=15)
    did = f"appended {len(events)} events with append_events, then read the topic back partition by partition"
    if not records:
        explain(did=did, saw="an empty topic", expected="your records",
                nudge="are records delivered before append_events returns?")
    by_account = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        value = parse(r.value)
        if value is None or "id" not in value or "account" not in value:
            explain(did=did, saw=f"partition {r.partition} offset {r.offset} holds {r.value!r:.100}",
                    expected='a JSON object with at least "id" and "account" (the account the record changes)')
        by_account[value["account"]].append(r)
        if r.key_text != value["account"]:
            explain(did=did, saw=f"a record changing {value['account']} (event {value['id']}) has key {r.key!r}",
                    expected=f"key {value['account'].encode()!r}",
                    nudge="the key decides the partition. Which key puts all of one account's records together?")
    for account, want in histories(events).items():
        mine = by_account.get(account, [])
        parts = sorted({r.partition for r in mine})
        if len(parts) > 1:
            explain(did=did, saw=f"{account}'s records are spread over partitions {parts}",
                    expected=f"all of {account}'s records on one partition",
                    nudge="Kafka orders records only within a partition; a balance needs its account's records "
                    "in order.")
        got = [parse(r.value)["id"] for r in mine]
        if got != want:
            missing = [i for i in want if i not in got]
            kinds = {e["id"]: e["type"] for e in events}
            saw = (f"{account}'s records carry event ids {got[:8]}…; missing {missing[:4]} "
                   f"({', '.join(sorted({kinds[i] for i in missing[:4]}))})" if missing
                   else f"{account}'s records in offset order carry {got[:8]}…")
            explain(did=did, saw=saw,
                    expected=f"{account}'s history: every event that changes it, in event order: {want[:8]}…",
                    nudge="a record changes one account. Which events change more than one account, and "
                    "where must each side be written?")


def test_replay_starts_at_offset_zero(kafka, impl, log, tmp_path):
    """Without a snapshot, catch_up replays every record from offset 0 and returns the right balances."""
    topic, events = log
    ends = end_offsets(kafka, topic)
    balances, seen = catch_up(impl, kafka, topic, tmp_path / "snapshot.json", "with no snapshot file")
    did = (f"appended {len(events)} events (a 3-partition topic, ends {ends}), then called catch_up with no "
           "snapshot file")
    nudge = ("a new consumer starts where auto.offset.reset says (librdkafka: latest). Who decides where a "
             "replay starts, and where it ends?")
    if not balances:
        explain(did=did, saw=f"catch_up returned {balances!r} after applying {len(seen)} records",
                expected=f"{len(fold(events))} accounts' balances", nudge=nudge)
    expect_all_records(seen, ends, did, nudge)
    expect_balances(balances, fold(events), did,
                    "a withdrawal is declined when the balance at that moment does not cover it. Are you applying "
                    "each account's records in their order, with the rules of the README?")


def test_rebuild_after_state_is_deleted(kafka, impl, log, tmp_path):
    """After the snapshot is deleted, catch_up rebuilds every balance from the log."""
    topic, events = log
    path = tmp_path / "snapshot.json"
    ends = end_offsets(kafka, topic)
    catch_up(impl, kafka, topic, path, "with no snapshot file")
    if not path.exists():
        explain(did="called catch_up with a snapshot path that did not exist yet",
                saw=f"no file at {path.name} afterwards", expected="catch_up to write its snapshot there")
    path.unlink()
    balances, seen = catch_up(impl, kafka, topic, path, "again, after deleting the snapshot file")
    did = ("called catch_up once (it wrote its snapshot), deleted the snapshot file as if the disk was lost, "
           "then called catch_up again")
    nudge = ("the local state is gone, but a consumer group's committed offsets are not. Which one knows "
             "what your balances contain?")
    expect_all_records(seen, ends, did, nudge)
    expect_balances(balances, fold(events), did, nudge)


def test_snapshot_records_next_offsets(kafka, impl, log, tmp_path):
    """The snapshot stores the balances and, for every partition, the next offset to read."""
    topic, events = log
    path = tmp_path / "snapshot.json"
    ends = end_offsets(kafka, topic)
    catch_up(impl, kafka, topic, path, "with no snapshot file")
    did = f"called catch_up on a topic whose partitions end at {ends}, then read {path.name}"
    try:
        snapshot = json.loads(path.read_text(encoding="utf-8"))
        offsets = {int(p): o for p, o in snapshot["offsets"].items()}
        balances = snapshot["balances"]
    except FileNotFoundError:
        explain(did=did, saw="no snapshot file", expected="catch_up to write it")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        explain(did=did, saw=f"a file the check could not read as the README's format ({type(exc).__name__}: "
                f"{exc}): {path.read_text(errors='replace')[:120]!r}",
                expected='{"balances": {"acc-...": cents}, "offsets": {"<partition>": next_offset}}')
    if offsets != ends:
        explain(did=did, saw=f"offsets {offsets}", expected=f"{ends}: for every partition, the offset of the next "
                "record to read (the partition's end offset after a full catch-up)",
                nudge="after applying the record at offset N, which offset does the next run need first?")
    expect_balances(balances, fold(events), did + " (its balances)",
                    "the snapshot's balances must be exactly the state at its offsets.")


def test_resume_from_snapshot_reads_only_the_tail(kafka, impl, log, tmp_path):
    """Resuming from a snapshot applies only the newer records and matches a full replay."""
    topic, events = log
    path = tmp_path / "snapshot.json"
    catch_up(impl, kafka, topic, path, "with no snapshot file")
    before = end_offsets(kafka, topic)
    more = make_events(seed=12, count=SECOND_BATCH, first_id=FIRST_BATCH + 1)
    append(impl, kafka, topic, more)
    after = end_offsets(kafka, topic)
    tail = {(p, o) for p in range(PARTITIONS) for o in range(before[p], after[p])}
    balances, seen = catch_up(impl, kafka, topic, path, "with the snapshot of the first call")
    did = (f"called catch_up (snapshot at ends {before}), appended {len(more)} more events (ends now {after}), "
           "then called catch_up again with that snapshot")
    nudge = "offsets name records, not gaps. Which offset does the snapshot promise the next run starts at?"
    old = sorted(x for x in seen if x not in tail)
    if old:
        explain(did=did, saw=f"on_event saw {len(seen)} records, {len(old)} of them already in the snapshot, "
                f"e.g. (partition, offset) {old[:4]}",
                expected=f"only the {len(tail)} new records", nudge=nudge)
    if sorted(seen) != sorted(tail) or len(seen) != len(set(seen)):
        missing = sorted(tail - set(seen))
        explain(did=did, saw=f"on_event saw {len(seen)} records; never {missing[:4]}" if missing
                else f"on_event saw some records twice: {sorted(seen)[:6]}",
                expected=f"exactly the {len(tail)} new records, once each", nudge=nudge)
    expect_balances(balances, fold(events + more), did, nudge)
    again, seen = catch_up(impl, kafka, topic, path, "a third time, with nothing new on the topic")
    if seen or again != fold(events + more):
        explain(did=did + ", then a third time with nothing new",
                saw=f"{len(seen)} records applied, balances: {diff(again, fold(events + more))}",
                expected="no record applied and the same balances", nudge=nudge)
