"""Hidden checks for kata-14 (CDC with the outbox pattern). Never shown to learners."""

import json
import time
from collections import Counter

import pytest
from _kata14_support import (
    DEFAULT_MAX_MESSAGE_BYTES,
    OPS,
    REFUSING_MAX_MESSAGE_BYTES,
    AbortedBatch,
    Outbox,
    busiest_second,
    call_desc,
    events_by_id,
    fail_if_died,
    idle_interval,
    set_max_message_bytes,
    start_relay,
    stop_relay,
    stop_watch,
    story_rows,
    transaction_state,
    wait_until_sent,
    writers_of,
)

from grader.checklib import KafkaKit, explain

NEW_ROWS_S = 6.0  # rows committed while the relay runs: it looks again about every 0.1 s
LOCK_AFTER_PROCESS_S = 0.3  # how long the application keeps its lock once the relay called process() for row 8
MIN_IDLE_PAUSE_S = 0.02  # "about 0.1 s" between looks at an empty outbox; a spinning loop takes microseconds
MAX_LOOKS_PER_S = 100  # an idle relay pauses about 0.1 s between looks: ~10 calls a second, never hundreds
REFUSE_S = 8.0  # a refused event fails its delivery (or commit) at once: the relay must raise by then


def expect_each_once_in_order(events, count: int, did: str, lost_nudge: str, dupe_nudge: str) -> None:
    ids = [i for i, _, _ in events]
    want = list(range(1, count + 1))
    seen = Counter(ids)
    missing = [i for i in want if seen[i] == 0]
    dupes = sorted(i for i, n in seen.items() if n > 1)
    if missing:
        explain(did=did + ", then read the topic back",
                saw=f"outbox ids in the topic, in offset order: {ids}; rows {missing} never arrived "
                "although they are marked sent",
                expected=f"each of rows 1..{count} exactly once", nudge=lost_nudge)
    if dupes:
        explain(did=did + ", then read the topic back",
                saw=f"outbox ids in the topic, in offset order: {ids}; rows {dupes} are there more than once",
                expected=f"each of rows 1..{count} exactly once", nudge=dupe_nudge)
    if ids != want:
        explain(did=did + ", then read the topic back",
                saw=f"outbox ids in offset order: {ids}", expected=f"commit order: {want}",
                nudge="consumers of change events apply them in the order they read them. Which column of the "
                "outbox records the order in which the application committed its changes?")


def processed_ids(run, did: str) -> list[int]:
    ids = []
    for rec in run.records():
        event = rec.get("value")
        try:
            ids.append(int(event["source"]["outbox_id"]))
        except (TypeError, KeyError, ValueError):
            explain(did=did, saw=f"process() was called with {json.dumps(event)[:200]}",
                    expected="process(event): the change event (a dict) of the row Kafka just confirmed",
                    nudge="call process() with the same event you sent.")
    return ids


@pytest.fixture(scope="module")
def plain_run(bootstrap_servers, impl_path, pytestconfig, tmp_path_factory):
    """One uninterrupted relay run, shared by the first two checks: 16 INSERT/UPDATE/DELETE rows, 8 of them
    committed while the relay runs."""
    run_id = pytestconfig.getoption("--kata-run-id") or "local"
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{run_id}-k14")
    workdir = tmp_path_factory.mktemp("plain")
    topic = kit.create_topic(partitions=1)
    db = Outbox(workdir / "shop.db")
    rows = story_rows(16)
    db.insert(rows[:8])
    outcome = {"kafka": kit, "topic": topic, "db": db, "failure": None,
               "did": call_desc(topic, " on an outbox holding 8 unsent rows; once process() had been called "
                                "for row 8, the application opened a write transaction (inserting rows 9..16), "
                                f"which locks the database for writers, and kept it open {LOCK_AFTER_PROCESS_S} s")}
    # Once Kafka confirmed rows 1..8 (process() was called for row 8), the application opens a write
    # transaction and keeps the database locked while the relay goes to mark them: the relay must wait
    # for the lock, not fail.
    watched = stop_watch(impl_path, workdir, "plain", pause_at=8)
    run = start_relay(watched.wrapper, workdir, kit, db, topic, kit.unique("relay"))
    app = None
    try:
        try:
            deadline = time.monotonic() + 30
            while not watched.paused.exists() and run.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            app = db.hold_insert(rows[8:])
            watched.resume.touch()
            time.sleep(LOCK_AFTER_PROCESS_S)  # the relay's UPDATE comes right after process(): it must wait
            app.commit()
            fail_if_died(run, outcome["did"] + ", then committed that transaction")
            outcome["did"] += ", then committed that transaction while the relay ran"
            wait_until_sent(run, db, list(range(1, 17)), outcome["did"], timeout=NEW_ROWS_S,
                            nudge="rows the application commits while the relay runs should go out promptly: how "
                            "long does your relay wait before it looks at the table again?")
            # Everything is sent: the outbox is empty, and the relay should pause between looks.
            pause = idle_interval(watched.events, after=time.monotonic(), looks=2)
            if pause is not None and pause < MIN_IDLE_PAUSE_S:
                explain(did=outcome["did"] + ", and timed its should_stop() calls once the outbox was empty",
                        saw=f"only {pause * 1000:.1f} ms between two looks at the empty outbox",
                        expected="a short pause (about 0.1 s) before looking at an empty outbox again",
                        nudge="what does your relay do when the outbox has no unsent rows?",
                        seen_in="the check's callbacks")
            stop_relay(run, outcome["did"])
            busiest = busiest_second(watched.events)
            if busiest > MAX_LOOKS_PER_S:
                explain(did=outcome["did"] + ", and counted its should_stop() calls",
                        saw=f"{busiest} should_stop() calls within one second",
                        expected=f"a pause (about 0.1 s) between looks at an empty outbox: at most {MAX_LOOKS_PER_S} "
                        "calls a second", nudge="what does your relay do when the outbox has no unsent rows?",
                        seen_in="the check's callbacks")
        except BaseException as exc:  # explained already: every check of this run reports it
            outcome["failure"] = exc
        yield outcome
    finally:
        if app is not None:
            app.close()  # rolls back what is not committed
        run.close()
        kit.close()


def _require(outcome) -> None:
    if outcome["failure"] is not None:
        raise outcome["failure"]


def test_every_change_is_relayed_in_commit_order(plain_run):
    """Every outbox row reaches the topic exactly once, in commit order, including rows committed while it runs."""
    _require(plain_run)
    did = plain_run["did"]
    expect_each_once_in_order(
        events_by_id(plain_run["kafka"], plain_run["topic"], did), 16, did,
        lost_nudge="a row marked sent must be in the topic: mark it only once Kafka confirmed it.",
        dupe_nudge="without any crash, each row should be sent once: do you re-read rows you already sent?")


def test_events_use_the_change_envelope(plain_run):
    """Each record is a Debezium-style change event (op, before, after, source) keyed by its aggregate."""
    _require(plain_run)
    kafka, topic, db, did = plain_run["kafka"], plain_run["topic"], plain_run["db"], plain_run["did"]
    rows = db.rows()
    records = sorted(kafka.read_all(topic, timeout=20), key=lambda r: r.offset)
    if not records:
        explain(did=did + ", then read the topic back", saw="no records", expected="16 change events")
    for record in records:
        try:
            event = json.loads(record.value)
        except (TypeError, ValueError):
            explain(did=did + ", then read the topic back", saw=f"offset {record.offset} holds "
                    f"{record.value_text!r:.200}", expected="a JSON change event",
                    nudge="serialize the envelope with json.dumps.")
        if not isinstance(event, dict) or not {"op", "before", "after", "source"} <= set(event):
            keys = sorted(event) if isinstance(event, dict) else type(event).__name__
            explain(did=did + ", then read the topic back",
                    saw=f"offset {record.offset}: a JSON value with keys {keys}",
                    expected='an envelope {"op": ..., "before": ..., "after": ..., "source": {...}}',
                    nudge="a consumer of a change stream needs to know what happened (op), the state before "
                    "and after, and where the change came from, without reading your database.")
        source = event["source"]
        row = rows.get(source.get("outbox_id")) if isinstance(source, dict) else None
        if row is None or source.get("table") != "outbox":
            explain(did=did + ", then read the topic back", saw=f"offset {record.offset}: source = {source!r}",
                    expected='source = {"table": "outbox", "outbox_id": <the row\'s id>, ...}',
                    nudge="source tells a consumer which row the event came from.")
        where = f"the event of outbox row {row['id']} ({row['op']} of {row['aggregate']})"
        if event["op"] != OPS[row["op"]]:
            explain(did=did, saw=f"{where} has op = {event['op']!r}", expected=f"op = {OPS[row['op']]!r}",
                    nudge="Debezium's ops: c = create (INSERT), u = update (UPDATE), d = delete (DELETE).")
        for side in ("before", "after"):
            want = json.loads(row[side]) if row[side] is not None else None
            if isinstance(event[side], str):
                explain(did=did, saw=f"{where} has {side} = a string holding JSON ({event[side][:60]!r}...)",
                        expected=f"{side} as a JSON object (or null), not JSON text inside JSON",
                        nudge="the column holds JSON text: what must happen to it before it goes into the "
                        "envelope?")
            if event[side] != want:
                explain(did=did, saw=f"{where} has {side} = {json.dumps(event[side])[:120]}",
                        expected=f"{side} = the row's {side} column ({json.dumps(want)[:120]})",
                        nudge="INSERT has no before, DELETE has no after; both are null in the envelope.")
        if record.key != row["aggregate"].encode():
            explain(did=did, saw=f"{where} has key {record.key!r}", expected=f"key {row['aggregate'].encode()!r}",
                    nudge="the key is what compaction and partitioning use to group the changes of one entity.")


def test_crash_after_delivery_sends_no_duplicates(kafka, impl_path, tmp_path):
    """A relay killed after Kafka confirmed a row, before marking it sent, does not send it again on restart."""
    topic = kafka.create_topic(partitions=1)
    db = Outbox(tmp_path / "shop.db")
    started_ms = int(time.time() * 1000)
    rows = story_rows(14)
    db.insert(rows[:10])
    txid = kafka.unique("relay")
    did = (call_desc(topic, " on 10 unsent rows") + " and SIGKILLed it right after its 4th process() call")
    aborted = AbortedBatch(kafka, kafka.unique("crashed-instance"))  # gets ready while the relay runs
    run = start_relay(impl_path, tmp_path, kafka, db, topic, txid, crash_after=4)
    try:
        if run.wait(timeout=60) is None:
            explain(did=did, saw="process() was not called 4 times within 60s",
                    expected="process(event) once per row, right after Kafka confirmed it",
                    nudge="is process() called for every relayed row?")
        if not run.crashed_as_planned:
            fail_if_died(run, did)
        processed = processed_ids(run, did)
        crash_row = processed[-1]
        if crash_row in db.sent_ids():
            explain(did=did, saw=f"when process() ran for row {crash_row}, the row was already marked sent",
                    expected="process(event) after Kafka confirmed the row and before the row is marked sent",
                    nudge="the contract puts process() exactly where a real crash hurts most: delivered, not "
                    "yet marked.")
        # read_committed: an event inside a transaction that never committed was not delivered.
        in_topic = {int(json.loads(r.value)["source"]["outbox_id"])
                    for r in kafka.read_all(topic, timeout=10) if _is_event(r.value)}
        if crash_row not in in_topic:
            explain(did=did, saw=f"process() ran for row {crash_row}, but its event was not in the topic when "
                    "the relay died", expected="process(event) only after Kafka confirmed the row's delivery",
                    nudge="a delivery is confirmed by the delivery report (or commit_transaction() returning).")
    finally:
        run.close()
    # What an incarnation that died mid-batch leaves behind: the events of the next rows in the topic's log,
    # in a transaction that was aborted (they were never delivered).
    db.insert(rows[10:])
    aborted.write(topic, db, range(11, 15))
    did += (", then committed rows 11..14 and left their events in the topic inside an ABORTED transaction "
            "(what a relay instance that died before its commit leaves behind)")
    did += ", then started it again until every row was marked sent"
    again = start_relay(impl_path, tmp_path, kafka, db, topic, txid)
    try:
        wait_until_sent(again, db, list(range(1, 15)), did)
        stop_relay(again, did)
    finally:
        again.close()
    expect_each_once_in_order(
        events_by_id(kafka, topic, did), 14, did,
        lost_nudge="which rows did a run mark sent, and were they really delivered? Events of a transaction "
        "that was aborted were not delivered, although they are in the topic's log.",
        dupe_nudge="after a crash, the database says 'not sent' for rows Kafka already has. Where can a "
        "restarted relay learn the truth about what was delivered?")
    others = sorted(writers_of(kafka, topic, since_ms=started_ms) - {txid, aborted.transactional_id})
    if others:
        explain(did=did + ", then read the transaction coordinator's records of who wrote to the topic",
                saw=f"transactions of transactional.id {', '.join(map(repr, others))}",
                expected=f"only {txid!r}, the transactional_id it was given, in every run",
                nudge="the broker fences a zombie and aborts a crashed relay's open transaction only for a "
                "producer with the same transactional.id. Is yours the same after a restart?")


def _is_event(value) -> bool:
    try:
        return "outbox_id" in json.loads(value)["source"]
    except (TypeError, ValueError, KeyError):
        return False


def test_rows_stay_unsent_until_kafka_has_them(kafka, impl_path, tmp_path):
    """Rows Kafka refuses stay unsent, the relay raises, and a restart relays them: nothing is lost."""
    started_ms = int(time.time() * 1000)
    topic = kafka.create_topic(partitions=1)
    db = Outbox(tmp_path / "shop.db")
    rows = story_rows(12)
    db.insert(rows[:6])
    txid = kafka.unique("relay")
    did = call_desc(topic, " on 6 unsent rows")
    run = start_relay(impl_path, tmp_path, kafka, db, topic, txid)
    later = set(range(7, 13))
    try:
        wait_until_sent(run, db, list(range(1, 7)), did)
        set_max_message_bytes(kafka, topic, REFUSING_MAX_MESSAGE_BYTES)
        db.insert(rows[6:])
        did += (f", then set the topic's max.message.bytes to {REFUSING_MAX_MESSAGE_BYTES} (Kafka now refuses "
                "every event) and committed rows 7..12")
        deadline = time.monotonic() + REFUSE_S
        marked = set()
        while time.monotonic() < deadline and run.proc.poll() is None:
            marked = set(db.sent_ids()) & later
            if marked:
                break
            time.sleep(0.1)
        marked = set(db.sent_ids()) & later
        if marked:
            in_topic = {int(json.loads(r.value)["source"]["outbox_id"])
                        for r in kafka.read_all(topic, timeout=10, isolation="read_uncommitted")
                        if _is_event(r.value)}
            lost = sorted(marked - in_topic)
            if lost:
                explain(did=did, saw=f"rows {lost} are marked sent, but Kafka refused them: they are not in the "
                        "topic", expected="refused rows stay unsent (sent = 0), so a restarted relay sends them",
                        nudge="when is a row really sent? What tells your code that Kafka has it?")
        if run.proc.poll() is None:
            explain(did=did, saw=f"{REFUSE_S:.0f}s later the relay was still running and had not raised",
                    expected="relay_outbox to raise an exception when Kafka refuses a row",
                    nudge="a delivery report with an error (or a failing commit_transaction) is an answer too: "
                    "surface it instead of waiting or retrying.", seen_in="the relay's process")
        if run.proc.returncode == 0:
            explain(did=did, saw="relay_outbox returned normally", expected="it to raise: Kafka refused rows",
                    nudge="what does the delivery report (or commit_transaction) say about these rows?",
                    seen_in="the relay's process")
        # A transactional relay ends its failed transaction before it raises (a plain producer has none).
        state = None
        for _ in range(30):
            state = transaction_state(kafka, txid, since_ms=started_ms)
            if state not in ("Ongoing", "PrepareAbort"):
                break
            time.sleep(0.1)
        if state == "Ongoing":
            explain(did=did + ", saw the relay raise, then read the transaction coordinator's record of its "
                    "transactional.id", saw="its last transaction is still Ongoing",
                    expected="the failed transaction aborted before relay_outbox raises",
                    nudge="a transaction whose commit failed stays open until someone aborts it (or the broker "
                    "times it out, a minute later). Which producer call ends it?")
    finally:
        run.close()
    set_max_message_bytes(kafka, topic, DEFAULT_MAX_MESSAGE_BYTES)
    did += ", saw the relay raise, restored max.message.bytes and restarted the relay"
    again = start_relay(impl_path, tmp_path, kafka, db, topic, txid)
    try:
        wait_until_sent(again, db, list(range(1, 13)), did)
        stop_relay(again, did)
    finally:
        again.close()
    expect_each_once_in_order(
        events_by_id(kafka, topic, did), 12, did,
        lost_nudge="rows marked sent are never looked at again. Were they delivered when you marked them?",
        dupe_nudge="after the restart, which rows did Kafka already have?")
