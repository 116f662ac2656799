"""Hidden checks for kata-16 (dead-letter topic for poison pills). Never shown to learners."""

import json
import time
from collections import Counter

import pytest
from _kata16_support import (
    DEFAULT_MAX_MESSAGE_BYTES,
    HEADERS,
    REFUSING_MAX_MESSAGE_BYTES,
    RETURN_S,
    STOP_GAP_S,
    InThread,
    Sent,
    big_not_json,
    call_desc,
    child_processed,
    committed_offset,
    group_members,
    hwm_total,
    order,
    pill,
    set_max_message_bytes,
    settle_dlq,
    split_headers,
    start_child,
    stop_child,
    wait_child,
    write,
)

from grader.kit import explain

BOOM = ValueError("credit limit exceeded for order o-boom")
_KITS = []


@pytest.fixture(autouse=True)
def _keep_kit_alive(kafka):
    # A kit freed by the cyclic GC inside its AdminClient's own librdkafka thread aborts the process.
    _KITS.append(kafka)


def mixed_stream(kafka, topic: str) -> list[Sent]:
    """Good orders on 3 partitions with poison pills of every kind among them, all with headers."""
    items = [order("o-01", 10, 0), order("o-02", 20.5, 1), order("o-03", 30, 2)]
    items.append((pill("not JSON", b"bad-1", b"\xff\xfe{order_id: o-04", "not JSON", 4), 1))
    items += [order("o-05", 50, 0), order("o-06", 60, 1)]
    items.append((pill("missing amount", b"bad-2", json.dumps({"order_id": "o-07"}).encode(), "missing field", 7), 2))
    items += [order("o-08", 80, 2), order("o-09", 90, 1)]
    items.append((pill("o-boom", b"o-boom", json.dumps({"order_id": "o-boom", "amount": 13}).encode(),
                       "process() raised", 13), 0))
    items.append((pill("no value", b"bad-3", None, "no value at all", 14), 2))
    items.append((pill("amount as text", None, json.dumps({"order_id": "o-15", "amount": "15.50"}).encode(),
                       "amount is a string", 15), 0))
    items.append((pill("amount true", b"bad-5", json.dumps({"order_id": "o-16", "amount": True}).encode(),
                       "amount is a boolean", 16), 1))
    items.append((pill("no order_id", b"bad-6", json.dumps({"id": "o-17", "amount": 17}).encode(),
                       "missing order_id", 17), 2))
    # A well-formed order, in UTF-16: json.loads(bytes) guesses the encoding and would accept it.
    items.append((pill("UTF-16 JSON", b"bad-7", json.dumps({"order_id": "o-18", "amount": 18}).encode("utf-16"),
                       "not UTF-8", 18), 0))
    items += [order("o-10", 100, 0), order("o-11", 110, 1), order("o-12", 120, 2)]
    return write(kafka, topic, items)


def run_in_thread(kafka, impl, observe: bool = False):
    """Run the consumer on the mixed stream until every good order is processed; with observe, also look
    at the group's members, the should_stop() cadence while idle, and whether it left the group."""
    topic = kafka.create_topic(partitions=3)
    dlq = kafka.create_topic(partitions=1)
    group = kafka.unique("orders")
    records = mixed_stream(kafka, topic)
    good = [r.name for r in records if not r.poison]
    poison = [r for r in records if r.poison]
    did = (call_desc(topic, dlq) + f" on {len(records)} records with headers: good orders, and poison pills (a value "
           "that is not JSON, an order in UTF-16, no value at all, orders without amount or order_id, an amount "
           "that is a string or true, and an order whose process() raises ValueError)")
    consumer = InThread(impl, kafka, topic, group, dlq, {"o-boom": BOOM})
    seen = {"members": None, "gap": 0.0, "took": 0.0, "left": True}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and consumer.alive and not set(good) <= set(consumer.processed_ids()):
        time.sleep(0.1)
    if consumer.alive and set(good) <= set(consumer.processed_ids()):
        settle_dlq(kafka, dlq, len(poison))
        if observe:
            seen["members"] = group_members(kafka, group)[1]
            seen["gap"] = consumer.idle_stop_gap()
    if consumer.alive:
        seen["took"] = consumer.stop(did)
        if observe and consumer.error is None:
            seen["left"] = _left(kafka, group)
    if consumer.error is not None:
        exc = consumer.error
        if isinstance(exc, NotImplementedError):
            explain(did=did, saw="NotImplementedError: the consumer is still the stub", expected="it to consume")
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc} (processed so far: "
                f"{consumer.processed_ids()})", expected="each poison pill in the DLQ, and consuming to go on",
                nudge="one bad record must not stop the whole consumer group: every member would hit it too.",
                seen_in="the check's thread")
    return topic, dlq, records, consumer, did, seen


def _left(kafka, group: str, timeout: float = 2.0) -> bool:
    """True once the group has no member any more (the consumer left it), within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_members(kafka, group)[1]:
            return True
        time.sleep(0.1)
    return False


def dlq_did(did: str) -> str:
    return did + ", then read the DLQ topic"


def test_poison_pills_land_in_the_dlq_with_error_headers(kafka, impl):
    """Each poison pill is copied to the DLQ once, unchanged (key, value, headers), plus its origin and error.

    Unchanged: the original key, value bytes and headers in order; plus one each of the dlq.* headers."""
    topic, dlq, records, _, did, _ = run_in_thread(kafka, impl)
    dead = kafka.read_all(dlq, timeout=15)
    pills = [r for r in records if r.poison]
    strangers = [d for d in dead if all(d.value != p.value for p in pills)]
    if strangers:
        explain(did=dlq_did(did), saw=f"{len(strangers)} DLQ records that are no poison pill, e.g. key "
                f"{strangers[0].key!r} value {strangers[0].value!r:.80}",
                expected="only the poison pills, each an exact copy of the original record",
                nudge="which records belong in the DLQ: the ones that could not be processed, as they were read.")
    for p in pills:
        copies = [d for d in dead if d.value == p.value]
        if not copies:
            explain(did=dlq_did(did),
                    saw=f"the DLQ holds {len(dead)} records, none with the value of the {p.poison} record "
                    f"({p.where}, value {p.value!r:.60})", expected="every poison pill in the DLQ, its value unchanged",
                    nudge=("this one is a well-formed order, encoded in UTF-16: json.loads() of bytes guesses the "
                           "encoding (UTF-8, UTF-16 or UTF-32) and accepts it. The contract is UTF-8 JSON: decode "
                           "the value as UTF-8 first." if p.poison == "not UTF-8" else
                           "a record you cannot process must not vanish: someone has to be able to look at it, "
                           "fix it and replay it. Is it really an order? JSON true is not a number, a string is not "
                           "one either, and a record may have no value at all."))
        if len(copies) > 1:
            explain(did=dlq_did(did), saw=f"the {p.poison} record is there {len(copies)} times",
                    expected="once", nudge="is a record dead-lettered more than once?")
        copy = copies[0]
        if copy.key != p.key:
            explain(did=dlq_did(did), saw=f"the {p.poison} record has key {copy.key!r}",
                    expected=f"its original key {p.key!r}", nudge="copy the record as it was, key included.")
        own, dlq_headers = split_headers(copy)
        if own != p.headers:
            explain(did=dlq_did(did), saw=f"the {p.poison} record carries its own headers as {own}",
                    expected=f"the original record's headers, in order, unchanged: {p.headers} (plus the dlq.* ones)",
                    nudge="the record's own headers (a trace id, say) are part of the record: keep them.")
        bad = {h: dlq_headers.get(h) for h in HEADERS if len(dlq_headers.get(h, [])) != 1 or not dlq_headers[h][0]}
        if bad:
            explain(did=dlq_did(did),
                    saw=f"the {p.poison} record has dlq headers {dlq_headers}; missing, empty or repeated: "
                    f"{sorted(bad)}",
                    expected=f"each of {', '.join(HEADERS)} exactly once, not empty",
                    nudge="whoever looks at the DLQ needs to know where the record came from and what went wrong, "
                    "without the logs of the consumer that failed.")
        got = {h: v[0] for h, v in dlq_headers.items()}
        origin = (got["dlq.original.topic"], got["dlq.original.partition"], got["dlq.original.offset"])
        if origin != (topic, str(p.partition), str(p.offset)):
            explain(did=dlq_did(did), saw=f"the {p.poison} record says it came from topic/partition/offset {origin}",
                    expected=f"({topic!r}, '{p.partition}', '{p.offset}')",
                    nudge="the headers describe the original record, as the consumer received it.")
        if p.name == "o-boom" and (got["dlq.error.class"], got["dlq.error.message"]) != (type(BOOM).__name__,
                                                                                        str(BOOM)):
            explain(did=dlq_did(did), saw=f"the order whose process() raised has dlq.error.class="
                    f"{got['dlq.error.class']!r}, dlq.error.message={got['dlq.error.message']!r}",
                    expected=f"the exception process() raised: class {type(BOOM).__name__!r}, message {str(BOOM)!r}",
                    nudge="record the exception you caught (its class name and str()), not a fixed text.")


def test_good_records_keep_flowing_past_poison_pills(kafka, impl):
    """Every good order is processed once, in partition order, including those after a poison pill.

    Also: the consumer uses consumer_config, looks at should_stop() every second and leaves the group on return."""
    _, _, records, consumer, did, seen = run_in_thread(kafka, impl, observe=True)
    good = [r for r in records if not r.poison]
    got = Counter(consumer.processed_ids())
    missing = [r.name for r in good if got[r.name] == 0]
    if missing:
        explain(did=did, saw=f"process() got {consumer.processed_ids()}; never {missing}",
                expected=f"all {len(good)} good orders processed", nudge="what happens to the records after a poison "
                "pill in the same partition?", seen_in="the check's process() callback")
    extra = sorted(k for k in got if k not in {r.name for r in good})
    if extra or any(n > 1 for n in got.values()):
        explain(did=did, saw=f"process() got {consumer.processed_ids()}",
                expected=f"exactly the {len(good)} good orders, each once (no crash happened): never a poison pill",
                nudge="is every record you pass to process() really an order (UTF-8 JSON, a string order_id, a "
                "number amount)?" if extra else "is a record handled twice, in the normal path and again in the "
                "error path?",
                seen_in="the check's process() callback")
    for partition in range(3):
        want = [r.name for r in good if r.partition == partition]
        order_seen = [i for i in consumer.processed_ids() if i in want]
        if order_seen != want:
            explain(did=did, saw=f"partition {partition}'s orders were processed as {order_seen}", expected=f"{want}",
                    nudge="records of one partition arrive in order; keep it.",
                    seen_in="the check's process() callback")
    if consumer.config["client.id"] not in (seen["members"] or []):
        explain(did=did + f", with consumer_config={consumer.config}, and described the consumer group",
                saw=f"members with client ids {seen['members']}",
                expected=f"a member with client.id {consumer.config['client.id']!r}",
                nudge="add every entry of consumer_config to your consumer's configuration.")
    if seen["gap"] > STOP_GAP_S:
        explain(did=did + ", then left it idle and recorded when it called should_stop()",
                saw=f"{seen['gap']:.1f}s without a should_stop() call", expected=f"a call at least once a second "
                f"(at most {STOP_GAP_S:.0f}s apart here)", seen_in="the check's should_stop() callback",
                nudge="how long can one turn of your loop wait when no record comes?")
    if seen["took"] > RETURN_S or not seen["left"]:
        explain(did=did + ", then made should_stop() return True",
                saw=f"it returned after {seen['took']:.1f}s" + ("" if seen["left"] else
                                                                 "; 2s later the group still had its member"),
                expected=f"it returns within {RETURN_S:.0f}s, after closing the consumer (which leaves the group)",
                nudge="close the consumer before returning: its partitions go to other members at once.",
                seen_in="the check's thread and the group coordinator")


def test_offset_is_committed_only_after_the_dlq_has_the_record(kafka, impl_path, tmp_path):
    """While the DLQ refuses writes, the poison pill's offset is not committed; after a restart it reaches the DLQ."""
    topic = kafka.create_topic(partitions=1)
    dlq = kafka.create_topic(partitions=1, config={"max.message.bytes": REFUSING_MAX_MESSAGE_BYTES})
    group = kafka.unique("orders")
    records = write(kafka, topic, [order("o-01", 10, 0), order("o-02", 20, 0), (big_not_json("html page"), 0),
                                   order("o-03", 30, 0), order("o-04", 40, 0)])
    bad = records[2]
    did = (call_desc(topic, dlq) + f" on 5 records (a poison pill at offset {bad.offset}) while the DLQ topic "
           f"refused every write (max.message.bytes={REFUSING_MAX_MESSAGE_BYTES})")
    run = start_child(impl_path, tmp_path, kafka, topic, group, dlq)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and run.proc.poll() is None:
            if committed_offset(kafka, group, topic) > bad.offset:
                break
            time.sleep(0.2)
        committed = committed_offset(kafka, group, topic)
        if committed > bad.offset:
            explain(did=did, saw=f"the group committed offset {committed}, past the poison pill at offset "
                    f"{bad.offset}, while the DLQ holds {hwm_total(kafka, dlq)} records",
                    expected=f"the committed offset to stay at {bad.offset} until the DLQ has the record",
                    nudge="a commit says 'done with everything before this offset'. Is the poison pill done while its "
                    "DLQ write is still in flight, or failed?")
        if run.proc.poll() is None:
            explain(did=did, saw="20s later the consumer was still running and had not raised",
                    expected="consume_with_dead_letters to raise when the DLQ write fails",
                    nudge="a delivery report with an error is an answer too: surface it.")
        if run.proc.returncode == 0:
            explain(did=did, saw="it returned normally", expected="it to raise: the DLQ refused a record",
                    nudge="what did the DLQ write's delivery report say?")
        if committed != bad.offset:
            explain(did=did + ", saw it raise, and read the group's committed offset",
                    saw=f"committed offset {committed} ({'none' if committed < 0 else 'not the pill'})",
                    expected=f"{bad.offset}: o-01 and o-02 before the pill were processed, so committed",
                    nudge="each record is committed once it is handled: a good one after process() returned.")
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
    if sorted(processed) != ["o-01", "o-02", "o-03", "o-04"]:
        explain(did=did, saw=f"process() got {processed}", expected="o-01, o-02, o-03 and o-04, each once",
                nudge="where did the group's committed offset point when the consumer stopped?",
                seen_in="the check's process() callback")
    copies = [d for d in kafka.read_all(dlq, timeout=15) if d.value == bad.value]
    if len(copies) != 1:
        explain(did=dlq_did(did), saw=f"the poison pill is there {len(copies)} times",
                expected="exactly once", nudge="after the restart, was the poison pill read again?")


def test_a_dead_lettered_record_is_not_redone_after_a_crash(kafka, impl_path, tmp_path):
    """Killed mid-processing after a poison pill, a restarted consumer neither dead-letters it again nor loses any.

    The record being processed at the kill is processed again; nothing committed is redone."""
    topic = kafka.create_topic(partitions=1)
    dlq = kafka.create_topic(partitions=1)
    group = kafka.unique("orders")
    records = write(kafka, topic, [
        order("o-01", 10, 0),
        (pill("not JSON", b"bad-1", b"<<not json>>", "not JSON", 1), 0),
        order("o-02", 20, 0), order("o-03", 30, 0),
        (pill("missing amount", b"bad-2", json.dumps({"order_id": "o-bad"}).encode(), "missing field", 2), 0),
        order("o-04", 40, 0)])
    first_pill, held = records[1], records[2]
    did = (call_desc(topic, dlq) + " on: o-01, a value that is not JSON, o-02, o-03, an order without amount, o-04; "
           "held its 2nd process() call (o-02, right after the first poison pill)")
    run = start_child(impl_path, tmp_path, kafka, topic, group, dlq, hold_at=2)
    try:
        wait_child(run, run.hold_file.exists, 45, did, "process() to be called for o-01 and o-02")
        committed = committed_offset(kafka, group, topic)
        if committed != held.offset:
            explain(did=did + ", and read the group's committed offset while o-02 was being processed",
                    saw=f"committed offset {committed}",
                    expected=f"{held.offset}: o-01 and the poison pill at offset {first_pill.offset} done (the pill "
                    "safely in the DLQ), o-02 not yet",
                    nudge="a poison pill is handled once the DLQ confirmed it: commit it then, synchronously. A record "
                    "still being processed is not done." if committed < held.offset else
                    "the group says it is done with o-02 while process() is still working on it.")
    finally:
        run.close()
    did += ", SIGKILLed it there, then started it again"
    again = start_child(impl_path, tmp_path, kafka, topic, group, dlq)
    try:
        wait_child(again, lambda: "o-04" in child_processed(again), 45, did, "order o-04 to be processed")
        settle_dlq(kafka, dlq, 2)
        stop_child(again, did)
    finally:
        again.close()
    dead = kafka.read_all(dlq, timeout=15)
    for p in (r for r in records if r.poison):
        n = sum(1 for d in dead if d.value == p.value)
        if n != 1:
            explain(did=dlq_did(did), saw=f"the {p.poison} record ({p.where}) is in the DLQ {n} times",
                    expected="exactly once",
                    nudge="after the restart the group starts at its committed offset. Once a poison pill is safely "
                    "in the DLQ, what tells the group it is done with?" if n > 1 else
                    "the group moved past it, yet the DLQ never got it. Was its offset committed before the DLQ "
                    "confirmed the copy (a crash came in between), or was it skipped?")
    processed = child_processed(run) + child_processed(again)
    if processed != ["o-01", "o-02", "o-03", "o-04"]:
        explain(did=did, saw=f"process() got {processed} (both runs)",
                expected="o-01, then (after the restart) o-02 again, o-03, o-04: each finished once, in order",
                nudge="was an offset committed before its record was handled, or not committed after?",
                seen_in="the check's process() callback")
