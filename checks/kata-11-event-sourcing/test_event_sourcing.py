"""Hidden checks for kata-11 (event sourcing: replay, rebuild, snapshots). Never shown to learners."""

import json
import os
import threading
from collections import defaultdict

import pytest
from _kata11_expect import expect_all_records, expect_balances, read_snapshot
from _kata11_support import declined, diff, first_batch, fold, histories, make_events, parse
from confluent_kafka.admin import AdminClient

from grader.kit import ChildRun, explain

PARTITIONS = 5  # not the README's 3; with these accounts, partition 3 stays empty
FIRST_BATCH, SECOND_BATCH = 45, 20


RETURN_WITHIN_S = 15.0  # the solution needs a fraction of a second; a replay that cannot find its end never returns


def call(did: str, fn, *args, **kwargs):
    """Call learner code with a deadline; an exception or a hang becomes a teaching failure."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported below in the learner's terms
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)  # left behind if it never returns
    worker.start()
    worker.join(RETURN_WITHIN_S)
    if worker.is_alive():
        explain(did=did, saw=f"it had not returned after {RETURN_WITHIN_S:.0f}s (the reference takes well under a "
                "second)", expected="it to return once it reached the end of every partition", seen_in="your function",
                nudge="where does your replay start, and how does it know it reached 'now'? A consumer that waits "
                "for records that are never coming (positions from a group, auto.offset.reset=latest) never ends.")
    exc = outcome.get("error")
    if isinstance(exc, NotImplementedError):
        explain(did=did, saw=f"NotImplementedError: {exc}", expected="the function to be implemented",
                seen_in="your function")
    if exc is not None:
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="it to return normally",
                seen_in="your function",
                nudge="read the exception: did the broker refuse something, or did your code trip over a record?")
    return outcome.get("result")


def append(impl, kafka, topic: str, events: list[dict]) -> None:
    call(f"called append_events(bootstrap, {topic!r}, <{len(events)} events>)",
         impl.append_events, kafka.bootstrap_servers, topic, events)


def catch_up(impl, kafka, topic: str, path, what: str, on_record=None) -> tuple[dict, list[tuple[int, int]]]:
    """Run the learner's catch_up; return its balances and the (partition, offset) of each applied record."""
    seen: list[tuple[int, int]] = []

    def on_event(msg):
        seen.append((msg.partition(), msg.offset()))
        if on_record is not None:
            on_record(msg, len(seen))

    balances = call(f"called catch_up(bootstrap, topic, {os.path.basename(path)!r}, on_event) {what}",
                    impl.catch_up, kafka.bootstrap_servers, topic, str(path), on_event)
    return balances, seen


def end_offsets(kafka, topic: str) -> dict[int, int]:
    consumer = kafka.consumer()
    return {p: kafka.high_watermark(consumer, topic, p) for p in range(PARTITIONS)}


_SHARED: dict = {}  # the read-only log, appended once per run by whichever check needs it first


@pytest.fixture(scope="module")
def shared_topics(bootstrap_servers):
    yield _SHARED
    if "topic" in _SHARED:  # the kit of the check that created it did not delete it: we do, after all checks
        AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0}).delete_topics([_SHARED["topic"]])


def make_log(kafka, impl, events: list[dict]) -> str:
    """A 5-partition event log that keeps everything, filled by the learner's append_events."""
    topic = kafka.create_topic(partitions=PARTITIONS, config={"retention.ms": "-1"})
    assert declined(events) > 0, "test data must exercise the declined-withdrawal rule"
    append(impl, kafka, topic, events)
    return topic


@pytest.fixture
def log(kafka, impl, shared_topics):
    """The read-only log (shared by the checks that only read it): (topic, events)."""
    if "failure" in _SHARED:
        raise _SHARED["failure"]
    if "topic" not in _SHARED:
        events = first_batch(FIRST_BATCH)
        try:
            topic = make_log(kafka, impl, events)
        except pytest.fail.Exception as failure:
            _SHARED["failure"] = failure
            raise
        kafka.created_topics.remove(topic)
        _SHARED.update(topic=topic, events=events, ends=end_offsets(kafka, topic))
    return _SHARED["topic"], _SHARED["events"]


@pytest.fixture
def own_log(kafka, impl):
    """A log of this check's own, which it appends to."""
    events = first_batch(FIRST_BATCH)
    return make_log(kafka, impl, events), events


# ---------------------------------------------------------------------- the write side


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
                    "where must each side be written? Are records written in the order of the list, one at a "
                    "time per account (retries can reorder a non-idempotent producer's batches)?")


def test_append_raises_when_a_record_is_refused(kafka, impl):
    """append_events() raises when the broker refuses a record for good."""
    # No record batch fits in 64 bytes: the broker answers MESSAGE_TOO_LARGE, a permanent error.
    topic = kafka.create_topic(partitions=PARTITIONS, config={"max.message.bytes": "64"})
    did = f"called append_events on a topic whose max.message.bytes is 64 (every record is refused), {topic!r}"
    try:
        impl.append_events(kafka.bootstrap_servers, topic, first_batch(8))
    except Exception:  # noqa: BLE001 - any exception is what the contract asks for
        return
    explain(did=did, saw="it returned normally", expected="an exception: the records could not be delivered",
            seen_in="your function",
            nudge="flush() returns how many records are still queued, not how many failed: a refused record "
            "is 'done' too. Where does the producer tell you each record's outcome?")


# ---------------------------------------------------------------------- the read side


def test_replay_starts_at_offset_zero(kafka, impl, log, tmp_path):
    """Without a snapshot, catch_up replays every record from offset 0 and returns the right balances."""
    topic, events = log
    ends = _SHARED["ends"]
    balances, seen = catch_up(impl, kafka, topic, tmp_path / "snapshot.json", "with no snapshot file")
    did = (f"appended {len(events)} events (a {PARTITIONS}-partition topic, ends {ends}), then called catch_up "
           "with no snapshot file")
    nudge = ("a new consumer starts where auto.offset.reset says (librdkafka: latest). Who decides where a "
             "replay starts, and where it ends?")
    if not balances:
        explain(did=did, saw=f"catch_up returned {balances!r} after applying {len(seen)} records",
                expected=f"{len(fold(events))} accounts' balances", seen_in="your function's return value",
                nudge=nudge)
    expect_all_records(seen, ends, did, nudge)
    expect_balances(balances, fold(events), did,
                    "a withdrawal is declined when the balance at that moment does not cover it (one of exactly "
                    "the balance is not); a transfer is never declined. Are you applying each account's records "
                    "in their order, with the rules of the README?")


def test_rebuild_after_state_is_deleted(kafka, impl, log, tmp_path):
    """After the snapshot is deleted, catch_up rebuilds every balance from the log."""
    topic, events = log
    path = tmp_path / "snapshot.json"
    catch_up(impl, kafka, topic, path, "with no snapshot file")
    if not path.exists():
        explain(did="called catch_up with a snapshot path that did not exist yet",
                saw=f"no file at {path.name} afterwards", expected="catch_up to write its snapshot there",
                seen_in="the snapshot folder")
    path.unlink()
    balances, seen = catch_up(impl, kafka, topic, path, "again, after deleting the snapshot file")
    did = ("called catch_up once (it wrote its snapshot), deleted the snapshot file as if the disk was lost, "
           "then called catch_up again")
    nudge = ("the local state is gone, but a consumer group's committed offsets are not. Which one knows "
             "what your balances contain?")
    expect_all_records(seen, _SHARED["ends"], did, nudge)
    expect_balances(balances, fold(events), did, nudge)


def test_snapshot_records_next_offsets(kafka, impl, log, tmp_path):
    """The snapshot stores the balances and, for every partition (an empty one too), the next offset to read."""
    topic, events = log
    path = tmp_path / "snapshot.json"
    ends = _SHARED["ends"]
    catch_up(impl, kafka, topic, path, "with no snapshot file")
    did = f"called catch_up on a topic whose partitions end at {ends}, then read {path.name}"
    offsets, balances = read_snapshot(path, did)
    if offsets != ends:
        empty = [p for p, e in ends.items() if e == 0 and p not in offsets]
        explain(did=did, saw=f"offsets {offsets}", expected=f"{ends}: for every partition, the offset of the next "
                "record to read (the partition's end offset after a full catch-up)", seen_in="the snapshot file",
                nudge=f"partition {empty[0]} holds no record yet, and a later record there must not be skipped. "
                if empty else "after applying the record at offset N, which offset does the next run need first?")
    expect_balances(balances, fold(events), did + " (its balances)",
                    "the snapshot's balances must be exactly the state at its offsets.")


def test_resume_from_snapshot_reads_only_the_tail(kafka, impl, own_log, tmp_path):
    """Resuming from a snapshot applies only the newer records and matches a full replay."""
    topic, events = own_log
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
                f"e.g. (partition, offset) {old[:4]}", expected=f"only the {len(tail)} new records",
                seen_in="the calls of on_event", nudge=nudge)
    expect_all_records(seen, after, did, nudge, start=before)
    expect_balances(balances, fold(events + more), did, nudge + " Does the resumed fold start from the "
                    "snapshot's balances?")
    again, seen = catch_up(impl, kafka, topic, path, "a third time, with nothing new on the topic")
    if seen or again != fold(events + more):
        explain(did=did + ", then a third time with nothing new",
                saw=f"{len(seen)} records applied, balances: {diff(again, fold(events + more))}",
                expected="no record applied and the same balances", seen_in="your function", nudge=nudge)


def test_snapshot_survives_a_failed_write(kafka, impl_path, log, tmp_path):
    """A snapshot write that fails half-way (a full disk) leaves the previous snapshot whole, and catch_up raises."""
    topic, events = log
    path = tmp_path / "snapshot.json"
    # A valid snapshot of the state before any event: no balances, every partition at offset 0.
    old = json.dumps({"balances": {}, "offsets": {str(p): 0 for p in range(PARTITIONS)}})
    path.write_text(old, encoding="utf-8")
    limit = len(old) + 16  # the new snapshot (every account's balance) is much bigger than that
    # In a learner host of its own whose files may not grow past `limit` bytes: a write past it fails (EFBIG).
    run = ChildRun(impl_path, "catch_up", {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic,
                                           "snapshot_path": str(path)},
                   workdir=tmp_path, callbacks=(), name="fsize", limits={"fsize": limit})
    try:
        code = run.wait(timeout=60)
    finally:
        run.close()
    did = (f"wrote a valid snapshot (offsets 0, no balances), then ran catch_up in a process where no file may grow "
           f"past {limit} bytes (a disk that fills up while the new snapshot is written)")
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else None
    try:
        snapshot = json.loads(text) if text is not None else None
    except ValueError:
        snapshot = None
    whole_new = isinstance(snapshot, dict) and snapshot.get("balances") == fold(events)
    if text != old and not whole_new:
        explain(did=did, saw=f"the snapshot file now holds {text!r:.120}" if text is not None else
                "no snapshot file at all", expected="the previous snapshot, unchanged (the new one could not be "
                "written whole)", seen_in="the snapshot file",
                nudge="opening the snapshot for writing empties it at once; a crash or a full disk before the "
                "last byte leaves half a file, and the next start cannot read it. How can the new version "
                "replace the old one in a single step?")
    if code == 0 and not whole_new:
        explain(did=did, saw=f"catch_up returned normally; the snapshot file holds {text!r:.120}",
                expected="an exception: the snapshot could not be written", seen_in="your function",
                nudge="an error while saving the snapshot must not be swallowed.")


def test_replay_stops_at_the_end_it_started_with(kafka, impl, log, tmp_path):
    """catch_up reads up to the ends the partitions had when it started, though records keep arriving."""
    # Last in this module on purpose: it appends to the shared log, which the checks above only read.
    topic, events = log
    ends = end_offsets(kafka, topic)
    producer = kafka.producer()

    def grow(msg, n: int) -> None:
        if n == 1:  # while catch_up reads its first record, three more arrive behind it
            for _ in range(3):
                producer.produce(topic, key=msg.key(), value=msg.value(), partition=msg.partition())
            producer.flush(10)

    path = tmp_path / "snapshot.json"
    balances, seen = catch_up(impl, kafka, topic, path, "with no snapshot file, while the log grows", grow)
    did = (f"called catch_up with no snapshot on a log whose partitions ended at {ends}; while it applied its "
           "first record, the check appended 3 copies of that record to its partition")
    expect_all_records(seen, ends, did, "'now' is the high watermark of each partition when catch_up starts.")
    offsets, _ = read_snapshot(path, did + ", then read the snapshot")
    if offsets != ends:
        explain(did=did + ", then read the snapshot", saw=f"offsets {offsets}", expected=f"{ends}: the next offset "
                "after the last record applied, per partition", seen_in="the snapshot file",
                nudge="the snapshot's offsets must describe exactly the records its balances contain.")
    expect_balances(balances, fold(events), did, "records appended after the call started belong to the next call.")


def test_missing_topic_raises(kafka, impl, tmp_path):
    """catch_up raises for a topic that does not exist, rather than returning empty balances."""
    topic = kafka.unique("no-such-log")  # never created; the broker does not auto-create topics
    did = f"called catch_up(bootstrap, {topic!r}, ...) for a topic that does not exist, with no snapshot"
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = impl.catch_up(kafka.bootstrap_servers, topic, str(tmp_path / "snapshot.json"))
        except Exception as exc:  # noqa: BLE001 - any exception is what the contract asks for
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(RETURN_WITHIN_S)
    if "error" not in outcome:
        saw = f"it returned {outcome['result']!r}" if "result" in outcome else \
            f"it had not returned after {RETURN_WITHIN_S:.0f}s"
        explain(did=did, saw=saw, expected="an exception naming the problem", seen_in="your function",
                nudge="the topic's metadata carries an error when the topic is unknown. Empty balances look like "
                "a valid answer, and hide a misspelt topic name.")
