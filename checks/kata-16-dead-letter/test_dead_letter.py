"""Hidden checks for kata-16 (dead-letter topic for poison pills). Never shown to learners."""

import json
import time
from collections import Counter

from _kata16_support import (
    DEFAULT_MAX_MESSAGE_BYTES,
    HEADERS,
    REFUSING_MAX_MESSAGE_BYTES,
    InThread,
    Sent,
    big_not_json,
    call_desc,
    child_processed,
    committed_offset,
    explain_child_death,
    headers_of,
    hwm_total,
    order,
    set_max_message_bytes,
    settle_dlq,
    start_child,
    stop_child,
    wait_child,
    write,
)

from grader.kit import explain

BOOM = ValueError("credit limit exceeded for order o-boom")


def mixed_stream(kafka, topic: str) -> list[Sent]:
    """Good orders on 3 partitions with one poison pill of each kind among them."""
    items = [order("o-01", 10, 0), order("o-02", 20, 1), order("o-03", 30, 2)]
    items.append((Sent("not JSON", b"bad-1", b"\xff\xfe{order_id: o-04", poison="not JSON"), 1))
    items += [order("o-05", 50, 0), order("o-06", 60, 1)]
    items.append((Sent("missing amount", b"bad-2", json.dumps({"order_id": "o-07"}).encode(),
                       poison="missing field"), 2))
    items += [order("o-08", 80, 2), order("o-09", 90, 1)]
    items.append((Sent("o-boom", b"o-boom", json.dumps({"order_id": "o-boom", "amount": 13}).encode(),
                       poison="process() raised"), 0))
    items += [order("o-10", 100, 0), order("o-11", 110, 1), order("o-12", 120, 2)]
    return write(kafka, topic, items)


def run_in_thread(kafka, impl):
    topic = kafka.create_topic(partitions=3)
    dlq = kafka.create_topic(partitions=1)
    group = kafka.unique("orders")
    records = mixed_stream(kafka, topic)
    good = [r.name for r in records if not r.poison]
    poison = [r for r in records if r.poison]
    did = (call_desc(topic, dlq) + f" on {len(records)} records: good orders, a value that is not JSON, an order "
           "without amount, and an order whose process() raises ValueError")
    consumer = InThread(impl, kafka, topic, group, dlq, {"o-boom": BOOM})
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and consumer.alive and not set(good) <= set(consumer.processed_ids()):
        time.sleep(0.2)
    if consumer.alive and set(good) <= set(consumer.processed_ids()):
        settle_dlq(kafka, dlq, len(poison))
    if consumer.alive:
        consumer.stop(did)
    if consumer.error is not None:
        exc = consumer.error
        if isinstance(exc, NotImplementedError):
            explain(did=did, saw="NotImplementedError: the consumer is still the stub", expected="it to consume")
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc} (processed so far: "
                f"{consumer.processed_ids()})", expected="each poison pill in the DLQ, and consuming to go on",
                nudge="one bad record must not stop the whole consumer group: every member would hit it too.")
    return topic, dlq, records, consumer, did


def test_poison_pills_land_in_the_dlq_with_error_headers(kafka, impl):
    """Each poison pill is copied to the DLQ once, unchanged, with headers naming its origin and its error."""
    topic, dlq, records, _, did = run_in_thread(kafka, impl)
    dead = kafka.read_all(dlq, timeout=15)
    for pill in (r for r in records if r.poison):
        copies = [d for d in dead if d.value == pill.value]
        if not copies:
            explain(did=did + ", then read the DLQ topic",
                    saw=f"the DLQ holds {len(dead)} records, none with the value of the {pill.poison} record "
                    f"({pill.where})", expected="every poison pill in the DLQ, its value unchanged",
                    nudge="a record you cannot process must not vanish: someone has to be able to look at it, "
                    "fix it and replay it.")
        if len(copies) > 1:
            explain(did=did + ", then read the DLQ topic", saw=f"the {pill.poison} record is there {len(copies)} times",
                    expected="once", nudge="is a record dead-lettered more than once?")
        copy = copies[0]
        if copy.key != pill.key:
            explain(did=did + ", then read the DLQ topic", saw=f"the {pill.poison} record has key {copy.key!r}",
                    expected=f"its original key {pill.key!r}", nudge="copy the record as it was.")
        headers = headers_of(copy)
        missing = [h for h in HEADERS if not headers.get(h)]
        if missing:
            explain(did=did + ", then read the DLQ topic",
                    saw=f"the {pill.poison} record has headers {sorted(headers)}; missing or empty: {missing}",
                    expected=f"headers {', '.join(HEADERS)}",
                    nudge="whoever looks at the DLQ needs to know where the record came from and what went wrong, "
                    "without the logs of the consumer that failed.")
        origin = (headers["dlq.original.topic"], headers["dlq.original.partition"], headers["dlq.original.offset"])
        if origin != (topic, str(pill.partition), str(pill.offset)):
            explain(did=did + ", then read the DLQ topic",
                    saw=f"the {pill.poison} record says it came from topic/partition/offset {origin}",
                    expected=f"({topic!r}, '{pill.partition}', '{pill.offset}')",
                    nudge="the headers describe the original record, as the consumer received it.")
        if pill.name == "o-boom":
            cls, message = headers["dlq.error.class"], headers["dlq.error.message"]
            if not cls.endswith(type(BOOM).__name__) or str(BOOM) not in message:
                explain(did=did + ", then read the DLQ topic",
                        saw=f"the order whose process() raised has dlq.error.class={cls!r}, "
                        f"dlq.error.message={message!r}",
                        expected=f"the exception process() raised: class {type(BOOM).__name__!r}, "
                        f"message {str(BOOM)!r}", nudge="record the exception you caught, not a fixed text.")


def test_good_records_keep_flowing_past_poison_pills(kafka, impl):
    """Every good order is processed once, in partition order, including those after a poison pill."""
    _, _, records, consumer, did = run_in_thread(kafka, impl)
    good = [r for r in records if not r.poison]
    seen = Counter(consumer.processed_ids())
    missing = [r.name for r in good if seen[r.name] == 0]
    if missing:
        explain(did=did, saw=f"process() got {consumer.processed_ids()}; never {missing}",
                expected=f"all {len(good)} good orders processed", nudge="what happens to the records after a poison "
                "pill in the same partition?")
    dupes = sorted(k for k, n in seen.items() if n > 1)
    if dupes:
        explain(did=did, saw=f"process() got {dupes} more than once", expected="each good order once (no crash "
                "happened)", nudge="is a record handled twice, in the normal path and again in the error path?")
    for partition in range(3):
        want = [r.name for r in good if r.partition == partition]
        got = [i for i in consumer.processed_ids() if i in want]
        if got != want:
            explain(did=did, saw=f"partition {partition}'s orders were processed as {got}", expected=f"{want}",
                    nudge="records of one partition arrive in order; keep it.")


def test_offset_is_committed_only_after_the_dlq_has_the_record(kafka, impl_path, tmp_path):
    """While the DLQ refuses writes, the poison pill's offset is not committed; after a restart it reaches the DLQ."""
    topic = kafka.create_topic(partitions=1)
    dlq = kafka.create_topic(partitions=1, config={"max.message.bytes": REFUSING_MAX_MESSAGE_BYTES})
    group = kafka.unique("orders")
    g0, g1 = order("o-01", 10, 0), order("o-02", 20, 0)
    records = write(kafka, topic, [g0, g1, (big_not_json("html page"), 0), order("o-03", 30, 0),
                                   order("o-04", 40, 0)])
    pill = records[2]
    did = (call_desc(topic, dlq) + f" on 5 records (a poison pill at offset {pill.offset}) while the DLQ topic "
           f"refused every write (max.message.bytes={REFUSING_MAX_MESSAGE_BYTES})")
    run = start_child(impl_path, tmp_path, kafka, topic, group, dlq)
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and run.proc.poll() is None:
            if committed_offset(kafka, group, topic) > pill.offset:
                break
            time.sleep(0.3)
        committed = committed_offset(kafka, group, topic)
        if committed > pill.offset:
            explain(did=did, saw=f"the group committed offset {committed}, past the poison pill at offset "
                    f"{pill.offset}, while the DLQ holds {hwm_total(kafka, dlq)} records",
                    expected=f"the committed offset to stay at or below {pill.offset} until the DLQ has the record",
                    nudge="a commit says 'done with everything before this offset'. Is the poison pill done while its "
                    "DLQ write is still in flight, or failed?")
        if run.proc.poll() is None:
            explain(did=did, saw="45s later the consumer was still running and had not raised",
                    expected="consume_with_dead_letters to raise when the DLQ write fails",
                    nudge="a delivery report with an error is an answer too: surface it.")
        if run.proc.returncode == 0:
            explain(did=did, saw="it returned normally", expected="it to raise: the DLQ refused a record",
                    nudge="what did the DLQ write's delivery report say?")
    finally:
        run.close()
    set_max_message_bytes(kafka, dlq, DEFAULT_MAX_MESSAGE_BYTES)
    did += ", saw it raise, restored the DLQ topic and started it again"
    again = start_child(impl_path, tmp_path, kafka, topic, group, dlq)
    try:
        wait_child(again, lambda: "o-04" in child_processed(again), 45, did, "order o-04 to be processed")
        settle_dlq(kafka, dlq, 1)
        stop_child(again, did)
    finally:
        again.close()
    processed = child_processed(run) + child_processed(again)
    lost = [name for name in ("o-01", "o-02", "o-03", "o-04") if name not in processed]
    if lost:
        explain(did=did, saw=f"orders {lost} were never processed", expected="every good order processed",
                nudge="where did the group's committed offset point when the consumer stopped?")
    copies = [d for d in kafka.read_all(dlq, timeout=15) if d.value == pill.value]
    if len(copies) != 1:
        explain(did=did + ", then read the DLQ topic", saw=f"the poison pill is there {len(copies)} times",
                expected="exactly once", nudge="after the restart, was the poison pill read again?")


def test_a_dead_lettered_record_is_not_redone_after_a_crash(kafka, impl_path, tmp_path):
    """Killed after a poison pill went to the DLQ, a restarted consumer neither dead-letters it again nor loses any."""
    topic = kafka.create_topic(partitions=1)
    dlq = kafka.create_topic(partitions=1)
    group = kafka.unique("orders")
    records = write(kafka, topic, [
        order("o-01", 10, 0),
        (Sent("not JSON", b"bad-1", b"<<not json>>", poison="not JSON"), 0),
        order("o-02", 20, 0), order("o-03", 30, 0),
        (Sent("missing amount", b"bad-2", json.dumps({"order_id": "o-bad"}).encode(), poison="missing field"), 0),
        order("o-04", 40, 0)])
    did = (call_desc(topic, dlq) + " on: o-01, a value that is not JSON, o-02, o-03, an order without amount, o-04; "
           "SIGKILLed it right after its 2nd process() call (o-02: the poison pill before it already handled)")
    run = start_child(impl_path, tmp_path, kafka, topic, group, dlq, crash_after=2)
    try:
        if run.wait(timeout=45) is None:
            explain(did=did, saw=f"process() was called {len(run.records())} times in 45s",
                    expected="process(order) for o-01 and o-02", nudge="does your consumer go on after a poison pill?")
        if not run.crashed_as_planned:
            explain_child_death(run, did)
    finally:
        run.close()
    did += ", then started it again"
    again = start_child(impl_path, tmp_path, kafka, topic, group, dlq)
    try:
        wait_child(again, lambda: "o-04" in child_processed(again), 45, did, "order o-04 to be processed")
        settle_dlq(kafka, dlq, 2)
        stop_child(again, did)
    finally:
        again.close()
    dead = kafka.read_all(dlq, timeout=15)
    for pill in (r for r in records if r.poison):
        n = sum(1 for d in dead if d.value == pill.value)
        if n != 1:
            explain(did=did + ", then read the DLQ topic", saw=f"the {pill.poison} record ({pill.where}) is in the DLQ "
                    f"{n} times", expected="exactly once",
                    nudge="after the restart the group starts at its committed offset. Once a poison pill is safely "
                    "in the DLQ, what tells the group it is done with?" if n > 1 else
                    "the group moved past it, yet the DLQ never got it. Was its offset committed before the DLQ "
                    "confirmed the copy (a crash came in between), or was it skipped?")
    processed = child_processed(run) + child_processed(again)
    lost = [r.name for r in records if not r.poison and r.name not in processed]
    if lost:
        explain(did=did, saw=f"orders {lost} were never processed", expected="every good order processed at least "
                "once", nudge="was an offset committed before its record was handled?")
