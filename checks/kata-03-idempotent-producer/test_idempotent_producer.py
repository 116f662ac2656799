"""Hidden checks for kata-03 (idempotent producer). Never shown to learners.

The checks prove behaviour on the broker, not configuration: records read back once and in key
order, the broker's own list of producers for each partition (DescribeProducers: only an idempotent
producer has an id and sequence numbers there), and failures caused for real (a record larger than
the topic's max.message.bytes, a topic that does not exist on a broker with
auto.create.topics.enable=false, a close() deadline shorter than the delivery timeout).

Still to come (a separate issue): the network-fault proof. Through a fault proxy (grader.faultproxy,
`broker: {faults: true}`), drop the broker's responses after it has appended a batch, then cut the
connection, so the producer must resend a batch the broker already holds; the check then reads back
and expects no duplicate and no reordering. Only an idempotent producer passes it. Until then,
test_broker_tracks_an_idempotent_producer observes the mechanism (producer id and per-partition
sequence numbers) that makes that resend safe.
"""

import gc
import json
from collections import Counter, defaultdict

from _kata03_support import (
    Watermarks,
    close_publisher,
    failed_pairs,
    open_publisher,
    producers_on,
    publish_all,
)

from grader.kit import explain

ACCOUNTS = [f"acct-{c}" for c in "abcdefgh"]
EVENTS_PER_ACCOUNT = 25


def _events(topic: str, accounts: list[str], per_account: int) -> list[tuple[str, str, str]]:
    # Interleaved: each account's events are mixed with everyone else's.
    return [(topic, account, json.dumps({"account": account, "seq": seq}))
            for seq in range(per_account) for account in accounts]


def _read_events(kafka, topic: str):
    records = kafka.read_all(topic, timeout=15)
    out = []
    for r in records:
        try:
            out.append((r, json.loads(r.value)))
        except (TypeError, ValueError):
            explain(did=f"read {topic} back from the beginning",
                    saw=f"partition {r.partition} offset {r.offset} holds {r.value!r:.80}",
                    expected="each record's value to be the value given to publish()")
    return out


def _require_once(kafka, topic: str, sent: list[tuple[str, str, str]], what: str) -> list:
    events = _read_events(kafka, topic)
    seen = Counter((rec.key_text, ev.get("seq")) for rec, ev in events)
    want = Counter((key, json.loads(value)["seq"]) for _, key, value in sent)
    missing = sorted(want - seen)
    dupes = sorted((k for k, n in seen.items() if n > 1), key=repr)
    if missing or dupes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if dupes:
            problems.append(f"{len(dupes)} written more than once (e.g. {dupes[:3]})")
        explain(did=f"{what}, then read {topic} from the beginning",
                saw=f"{len(events)} records (key, seq): " + "; ".join(problems),
                expected=f"each of the {len(sent)} records exactly once",
                nudge="a healthy topic receives every record you were given, once, by the time close() returns. "
                "What happens to records still queued in the producer when close() returns?")
    return events


def test_every_record_delivered_once_in_key_order(kafka, impl):
    """Every record is on the broker when close() returns: once each, in order per key."""
    topic = kafka.create_topic(partitions=3)
    sent = _events(topic, ACCOUNTS, EVENTS_PER_ACCOUNT)
    marks = Watermarks(kafka, topic, 3)
    try:
        publisher = open_publisher(impl, kafka.bootstrap_servers, {})
        publish_all(publisher, sent)
        failures, _ = close_publisher(publisher, 30.0)
        on_broker = marks.total()  # at once: close() promises the records are there *now*
    finally:
        marks.close()
    # The caller is done with the publisher: whatever it did not send is gone with it.
    del publisher
    gc.collect()
    if failures:
        explain(did=f"published {len(sent)} records to an existing, healthy 3-partition topic and called close()",
                saw=f"close() reported {len(failures)} failures, e.g. {failures[:2]}",
                expected="[] (nothing failed)",
                nudge="only records that really failed belong in the list; a delivery report with no error "
                "is a success.")
    if on_broker < len(sent):
        explain(did=f"published {len(sent)} records, called close(), and asked the broker for the topic's "
                "end offsets the moment close() returned",
                saw=f"{on_broker} of {len(sent)} records were on the broker",
                expected=f"all {len(sent)}: close() returns only after every record was acknowledged "
                "(or reported as failed)",
                nudge="publish() only puts a record in the producer's memory queue, and a record that has left "
                "your process is not stored yet. What must close() wait for before it returns?")
    events = _require_once(kafka, topic, sent, f"published {len(sent)} records over {len(ACCOUNTS)} keys")
    by_key = defaultdict(list)
    for rec, ev in sorted(events, key=lambda re: (re[0].partition, re[0].offset)):
        by_key[rec.key_text].append((rec.partition, ev["seq"]))
    for account in ACCOUNTS:
        parts = {p for p, _ in by_key[account]}
        seqs = [s for _, s in by_key[account]]
        if len(parts) > 1 or seqs != sorted(seqs):
            explain(did=f"read {account}'s records in offset order",
                    saw=f"partitions {sorted(parts)}, sequence {seqs[:8]}…",
                    expected=f"one partition, sequence 0..{EVENTS_PER_ACCOUNT - 1} in publish() order",
                    nudge="records with the same key share a partition, and Kafka keeps a partition's order. "
                    "Are the records produced with their key, in the order publish() was called?")


def test_failed_deliveries_are_reported(kafka, impl):
    """close() reports every record the broker refused or that never found its topic."""
    good = kafka.create_topic(partitions=2)
    # A topic that refuses batches above 2 KiB: the broker answers MESSAGE_TOO_LARGE. It gets only
    # the oversized record, so no healthy record shares (and fails with) its batch.
    tight = kafka.create_topic(partitions=1, config={"max.message.bytes": "2048"})
    missing = kafka.unique("no-such-topic")  # never created; the broker does not auto-create topics
    sent = _events(good, ["ok-1", "ok-2", "ok-3", "ok-4"], 5)
    bad = [(tight, "too-big", "x" * 10_000), (missing, "lost-0", "{}"), (missing, "lost-1", "{}")]
    records = sent[:10] + bad[:1] + sent[10:15] + bad[1:] + sent[15:]
    # A short delivery timeout: a record whose topic never appears fails after 3 s, not 5 minutes.
    config = {"message.timeout.ms": 3000}
    publisher = open_publisher(impl, kafka.bootstrap_servers, config)
    publish_all(publisher, records)
    failures, _ = close_publisher(publisher, 30.0)
    del publisher
    reported = Counter(failed_pairs(failures))
    want = Counter((t, k) for t, k, _ in bad)
    not_reported = sorted(want - reported)
    extra = sorted(reported - want, key=repr)
    did = (f"created ReliablePublisher(config={config}), published {len(sent)} records to a healthy topic, "
           "1 record of 10 kB to a topic with max.message.bytes=2048, 2 records to a topic that does not "
           "exist, then called close(30)")
    if (tight, "too-big") in not_reported:
        explain(did=did,
                saw=f"close() reported {sorted(reported, key=repr) or 'nothing'} (topic, key); the oversized record "
                "('too-big') is not among them",
                expected=f"('{tight}', 'too-big', <reason>) among the failures: the broker refused it",
                nudge="the broker's refusal only reaches your program in a delivery report, and only if the "
                "producer waits for the broker's answer at all (think about acks). Where do those reports go?")
    if not_reported:
        explain(did=did,
                saw=f"close() reported {sorted(reported, key=repr) or 'nothing'} (topic, key); missing: {not_reported}",
                expected="one entry for each record that could not be delivered, e.g. "
                f"('{missing}', 'lost-0', <reason>)",
                nudge="a record whose topic never appears fails when its delivery timeout (message.timeout.ms, "
                "passed in config) runs out, in a delivery report. Does your producer use the caller's config, "
                "and do you keep every failed report?")
    if extra:
        explain(did=did, saw=f"close() also reported {extra[:4]} as failed",
                expected="only the 3 undeliverable records",
                nudge="records on a healthy topic are delivered; report only reports that carry an error.")
    for item in failures:
        if len(item) < 3 or not str(item[2]).strip():
            explain(did=did, saw=f"a failure entry without a reason: {item!r:.120}",
                    expected="(topic, key, reason), the reason being the delivery report's error as text",
                    nudge="whoever handles the failure needs to know why it failed.")
    _require_once(kafka, good, sent, did.split(", then")[0])


def test_close_reports_what_is_still_undelivered(kafka, impl):
    """Records still undelivered when close()'s time is up are reported too, and close() keeps its deadline."""
    good = kafka.create_topic(partitions=1)
    missing = kafka.unique("no-such-topic")
    sent = _events(good, ["ok-1", "ok-2"], 5)
    pending = [(missing, "pending-0", "{}"), (missing, "pending-1", "{}")]
    # A delivery timeout far beyond close()'s: when close() gives up, these two are still waiting
    # for their topic and have no delivery report yet.
    config = {"message.timeout.ms": 120000}
    publisher = open_publisher(impl, kafka.bootstrap_servers, config)
    publish_all(publisher, sent + pending)
    failures, elapsed = close_publisher(publisher, 2.0)
    del publisher
    did = (f"created ReliablePublisher(config={config}), published {len(sent)} records to a healthy topic and "
           "2 to a topic that does not exist, then called close(2.0)")
    if elapsed > 2.0 + 8.0:
        explain(did=did, saw=f"close() took {elapsed:.1f} s",
                expected="close() returns soon after its timeout (2 s here)",
                nudge="waiting for the producer to drain takes a timeout. What does the wait tell you when "
                "the time runs out?")
    reported = Counter(failed_pairs(failures))
    not_reported = sorted(Counter((t, k) for t, k, _ in pending) - reported)
    if not_reported:
        explain(did=did,
                saw=f"close() reported {sorted(reported, key=repr) or 'nothing'} (topic, key); "
                f"not reported: {not_reported}",
                expected="both records to the missing topic among the failures: when close() stopped waiting "
                "they had not been delivered",
                nudge="when the wait for outstanding deliveries times out, some records have no delivery report "
                "yet and never will from a producer you are closing. The wait's return value tells you how many; "
                "how can each of them still reach the caller's list?")
    extra = sorted(set(reported) - {(t, k) for t, k, _ in pending}, key=repr)
    if extra:
        explain(did=did, saw=f"close() also reported {extra[:4]} as failed",
                expected="only the 2 records to the missing topic",
                nudge="the records on the healthy topic were delivered within the 2 s.")
    _require_once(kafka, good, sent, did.split(", then")[0])


def test_broker_tracks_an_idempotent_producer(kafka, impl):
    """The broker knows one producer id for the records, with sequence numbers counting every record."""
    topic = kafka.create_topic(partitions=3)
    sent = _events(topic, ACCOUNTS[:6], 10)
    publisher = open_publisher(impl, kafka.bootstrap_servers, {})
    publish_all(publisher, sent)
    failures, _ = close_publisher(publisher, 30.0)
    del publisher
    did = f"published {len(sent)} records to a new 3-partition topic and called close()"
    if failures:
        explain(did=did, saw=f"close() reported failures: {failures[:2]}", expected="[]")
    events = _require_once(kafka, topic, sent, did)
    per_partition = Counter(rec.partition for rec, _ in events)
    producers = producers_on(kafka, topic)
    did += ", then asked each partition's leader which producers wrote to it (DescribeProducers)"
    if not any(producers.get(p) for p in per_partition):
        explain(did=did,
                saw="no producer is tracked on any partition: the records carry no producer id and no sequence "
                "numbers",
                expected="one producer id on every partition that received records",
                nudge="the broker assigns a producer id, and checks sequence numbers, only for producers that "
                "ask for it. Without that, a batch resent after a lost acknowledgement is written twice.")
    ids = set()
    for partition, count in sorted(per_partition.items()):
        tracked = producers.get(partition, [])
        ids.update(t.producer_id for t in tracked)
        if len(tracked) != 1 or tracked[0].last_sequence != count - 1:
            explain(did=did,
                    saw=f"partition {partition} holds {count} records; the broker tracks "
                    f"{[(t.producer_id, t.last_sequence) for t in tracked]} (producer id, last sequence)",
                    expected=f"one producer whose last sequence number is {count - 1} (the first record is 0)",
                    nudge="one long-lived idempotent producer numbers every record it sends to a partition. "
                    "Several producers (or one per record) each start again at 0, and nothing orders them "
                    "against each other.")
    if len(ids) != 1:
        explain(did=did, saw=f"the partitions were written by different producer ids: {sorted(ids)}",
                expected="one producer id: one producer behind the publisher",
                nudge="create the producer once, and let every publish() use it.")
