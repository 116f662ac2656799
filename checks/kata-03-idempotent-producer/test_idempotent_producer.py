"""Hidden checks for kata-03 (idempotent producer). Never shown to learners.

The checks prove behaviour on the broker, not configuration: records read back once and in key
order, the broker's own list of producers for each partition (DescribeProducers: only an idempotent
producer has an id and sequence numbers there), and failures caused for real (a record larger than
the topic's max.message.bytes, a topic that does not exist on a broker with
auto.create.topics.enable=false, a close() deadline shorter than the delivery timeout, a local
queue too small for the records). Learner calls run in a worker thread with a deadline, so a hung
publish() or close() fails its check instead of stalling the run.

The network fault is real too: test_a_resent_batch_is_not_written_twice publishes through a proxy
(grader.kit.protocolproxy) that cuts the connection instead of passing on the broker's answer to the first
Produce request, after the broker appended the batch; the producer resends it, and only an
idempotent producer's resend is recognised (a plain one writes every record of the batch twice).
test_broker_tracks_an_idempotent_producer observes the mechanism (producer id and per-partition
sequence numbers) that makes that resend safe.
"""

from collections import Counter, defaultdict

from _kata03_support import (
    CLOSE_SLACK_S,
    Watermarks,
    close_publisher,
    failed_pairs,
    open_publisher,
    producers_on,
    publish_all,
)

from grader.kit import explain
from grader.kit.protocolproxy import BigClusterProxy

ACCOUNTS = [f"acct-{c}" for c in "abcdef"] + ["compte-é", "账户-8"]
EVENTS_PER_ACCOUNT = 25
LINGER_MS = 3000  # longer than publishing 200 records takes, even through the learner host on a busy machine


def _events(topic: str, accounts: list[str], per_account: int) -> list[tuple[str, str, str | bytes]]:
    """Interleaved (each account's events mixed with everyone else's), each value unique; values are
    str (some not ASCII) or bytes that are not UTF-8, since publish() takes both."""
    out = []
    for seq in range(per_account):
        for n, account in enumerate(accounts):
            if (seq + n) % 3 == 0:
                value = b"\xff\x00" + f"{account}#{seq}".encode()
            else:
                value = f'{{"account": "{account}", "seq": {seq}, "note": "événement ✓"}}'
            out.append((topic, account, value))
    return out


def _wire(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _require_once(kafka, topic: str, sent: list[tuple[str, str, str | bytes]], what: str) -> list:
    """Read the topic back: each sent record exactly once, key and value byte for byte. Returns
    [(record, index in sent)] so callers can check order."""
    index = {(key.encode("utf-8"), _wire(value)): i for i, (_, key, value) in enumerate(sent)}
    records = kafka.read_all(topic, timeout=15)
    seen = Counter((r.key, r.value) for r in records)
    unknown = [r for r in records if (r.key, r.value) not in index]
    missing = [sent[i][1:] for k, i in index.items() if seen[k] == 0]
    dupes = sum(1 for k, n in seen.items() if n > 1 and k in index)
    if unknown or missing or dupes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {[(k, v[:30]) for k, v in missing[:2]]})")
        if dupes:
            problems.append(f"{dupes} written more than once")
        if unknown:
            problems.append(f"{len(unknown)} not as published (e.g. key {unknown[0].key!r}, value "
                            f"{unknown[0].value!r:.60})")
        explain(did=f"{what}, then read {topic} from the beginning",
                saw=f"{len(records)} records: " + "; ".join(problems),
                expected=f"each of the {len(sent)} records exactly once, key as UTF-8 and value as given (a str "
                "as UTF-8, bytes unchanged)",
                nudge="a healthy topic receives every record you were given, once and unchanged, by the time "
                "close() returns. What happens to records still queued in the producer when close() returns?"
                if missing else "a record written twice was either produced twice by your code, or resent by the "
                "producer in a batch the broker already had: only an idempotent producer (a producer id and "
                "sequence numbers) lets the broker recognise the resend." if dupes else
                "is each record produced once, with the key and value it was given?")
    return [(r, index[(r.key, r.value)]) for r in records]


def _require_key_order(events: list, sent: list, accounts: list[str], what: str) -> None:
    by_key = defaultdict(list)
    for rec, i in sorted(events, key=lambda e: (e[0].partition, e[0].offset)):
        by_key[sent[i][1]].append((rec.partition, i))
    for account in accounts:
        parts = {p for p, _ in by_key[account]}
        order = [i for _, i in by_key[account]]
        if len(parts) > 1 or order != sorted(order):
            explain(did=f"{what}, then read {account}'s records in offset order",
                    saw=f"partitions {sorted(parts)}, records in publish() positions {order[:8]}…",
                    expected=f"one partition, positions {sorted(order)[:8]}… (the order of the publish() calls)",
                    nudge="records with the same key share a partition, and Kafka keeps a partition's order. "
                    "Are the records produced with their key, in the order publish() was called?")


def test_every_record_delivered_once_in_key_order(kafka, impl):
    """Every record is on the broker when close() returns: once each, unchanged, in order per key."""
    topic = kafka.create_topic(partitions=3)
    sent = _events(topic, ACCOUNTS, EVENTS_PER_ACCOUNT)
    marks = Watermarks(kafka, topic, 3)
    try:
        # Batches wait up to LINGER_MS before they leave on their own: a close() that does not make the producer
        # send and wait returns before anything is on the broker, however slow the calls before it were.
        publisher = open_publisher(impl, kafka.bootstrap_servers, {"linger.ms": LINGER_MS})
        publish_all(publisher, sent)
        failures, _ = close_publisher(publisher, None, bound=CLOSE_SLACK_S)  # the default timeout
        on_broker = marks.total()  # at once: close() promises the records are there *now*
    finally:
        marks.close()
    what = (f"published {len(sent)} records over {len(ACCOUNTS)} keys to a healthy 3-partition topic "
            f"(config {{'linger.ms': {LINGER_MS}}})")
    if failures:
        explain(did=f"{what} and called close()", seen_in="your close()",
                saw=f"close() reported {len(failures)} failures, e.g. {failures[:2]}", expected="[] (nothing failed)",
                nudge="only records that really failed belong in the list; a delivery report with no error "
                "is a success. Does close() give the records the time its default timeout allows?")
    if on_broker < len(sent):
        explain(did=f"{what}, called close(), and asked the broker for the topic's end offsets the moment close() "
                "returned", saw=f"{on_broker} of {len(sent)} records were on the broker",
                expected=f"all {len(sent)}: close() returns only after every record was acknowledged "
                "(or reported as failed)",
                nudge="publish() only puts a record in the producer's memory queue, and a record that has left "
                "your process is not stored yet. What must close() wait for before it returns?")
    events = _require_once(kafka, topic, sent, what)
    _require_key_order(events, sent, ACCOUNTS, what)


def test_a_resent_batch_is_not_written_twice(kafka, impl):
    """When an acknowledgement is lost and the producer resends, every record is still written once, in order."""
    topic = kafka.create_topic(partitions=2)
    sent = _events(topic, ACCOUNTS[:4], 10)
    real = next(iter(kafka.admin.list_topics(timeout=10).brokers.values()))
    proxy = BigClusterProxy(real.host, real.port, real.id, brokers=1)
    proxy.drop_produce_responses = 1  # the broker appends the first batch; its answer never arrives
    try:
        publisher = open_publisher(impl, proxy.bootstrap, {})
        publish_all(publisher, sent)
        failures, _ = close_publisher(publisher, 30.0, bound=CLOSE_SLACK_S)
    finally:
        proxy.close()
    what = (f"published {len(sent)} records through a proxy that cut the connection instead of passing on the "
            f"broker's answer to the first Produce request ({proxy.dropped} answer lost after the broker had "
            "appended the records), so the producer had to resend")
    if failures:
        explain(did=f"{what}, then called close(30)", saw=f"close() reported {failures[:2]}", expected="[]",
                seen_in="your close()", nudge="a lost acknowledgement is retried by the producer; the records "
                "reach the broker, so nothing failed.")
    events = _require_once(kafka, topic, sent, what)
    _require_key_order(events, sent, ACCOUNTS[:4], what)


def test_full_queue_waits_for_room(kafka, impl):
    """With a local queue smaller than the burst, publish() neither raises nor drops a record."""
    topic = kafka.create_topic(partitions=2)
    sent = _events(topic, ACCOUNTS[:4], 30)
    config = {"queue.buffering.max.messages": 8}
    publisher = open_publisher(impl, kafka.bootstrap_servers, config)
    publish_all(publisher, sent, at_once=False)  # waiting for room is what publish() should do here
    failures, _ = close_publisher(publisher, 30.0, bound=CLOSE_SLACK_S)
    what = f"created ReliablePublisher(config={config}) and published {len(sent)} records in a burst"
    if failures:
        explain(did=f"{what}, then called close(30)", saw=f"close() reported {failures[:2]}", expected="[]",
                seen_in="your close()", nudge="every record of this burst can be delivered: a full queue only "
                "means waiting for room.")
    events = _require_once(kafka, topic, sent, what)
    _require_key_order(events, sent, ACCOUNTS[:4], what)


def test_failed_deliveries_are_reported(kafka, impl):
    """close() reports every record the broker refused or that never found its topic, one entry each."""
    good = kafka.create_topic(partitions=2)
    # A topic that refuses batches above 2 KiB: the broker answers MESSAGE_TOO_LARGE. It gets only
    # the oversized record, so no healthy record shares (and fails with) its batch.
    tight = kafka.create_topic(partitions=1, config={"max.message.bytes": "2048"})
    missing = kafka.unique("no-such-topic")  # never created; the broker does not auto-create topics
    sent = _events(good, ["ok-1", "ok-2", "ok-3", "ok-4"], 5)
    # Two failed records share a key: one entry per record, not per key.
    bad = [(tight, "trop-grand-é", "x" * 10_000), (missing, "lost-ü", "{}"), (missing, "lost-ü", b"\x01")]
    records = sent[:10] + bad[:1] + sent[10:15] + bad[1:] + sent[15:]
    # A short delivery timeout: a record whose topic never appears fails after 3 s, not 5 minutes.
    config = {"message.timeout.ms": 3000}
    publisher = open_publisher(impl, kafka.bootstrap_servers, config)
    publish_all(publisher, records)
    failures, _ = close_publisher(publisher, 30.0, bound=3.0 + CLOSE_SLACK_S)
    reported = Counter(failed_pairs(failures))
    want = Counter((t, k) for t, k, _ in bad)
    not_reported = sorted(want - reported)
    extra = sorted(reported - want, key=repr)
    did = (f"created ReliablePublisher(config={config}), published {len(sent)} records to a healthy topic, "
           "1 record of 10 kB to a topic with max.message.bytes=2048, 2 records (same key) to a topic that does "
           "not exist, then called close(30)")
    if (tight, bad[0][1]) in not_reported:
        explain(did=did, seen_in="your close()",
                saw=f"close() reported {sorted(reported.elements(), key=repr) or 'nothing'} (topic, key); the "
                f"oversized record ({bad[0][1]!r}) is not among them",
                expected=f"('{tight}', {bad[0][1]!r}, <reason>) among the failures: the broker refused it",
                nudge="the broker's refusal only reaches your program in a delivery report, and only if the "
                "producer waits for the broker's answer at all (think about acks). Where do those reports go?")
    if not_reported:
        explain(did=did, seen_in="your close()",
                saw=f"close() reported {sorted(reported.elements(), key=repr) or 'nothing'} (topic, key); missing: "
                f"{not_reported}", expected="one entry for each record that could not be delivered, e.g. "
                f"('{missing}', {bad[1][1]!r}, <reason>) twice",
                nudge="a record whose topic never appears fails when its delivery timeout (message.timeout.ms, "
                "passed in config) runs out, in a delivery report. Does your producer use the caller's config, "
                "and do you keep every failed report, even two for the same key?")
    if extra:
        explain(did=did, saw=f"close() also reported {extra[:4]} as failed", seen_in="your close()",
                expected="only the 3 undeliverable records, once each",
                nudge="records on a healthy topic are delivered; report each failed record once.")
    _require_once(kafka, good, sent, did.split(", then")[0])


def test_close_reports_what_is_still_undelivered(kafka, impl):
    """Records still undelivered when close()'s time is up are reported too, and close() keeps its deadline."""
    good = kafka.create_topic(partitions=1)
    missing = kafka.unique("no-such-topic")
    sent = _events(good, ["ok-1", "ok-2"], 5)
    pending = [(missing, "pending-0", "{}"), (missing, "pending-ß", "{}")]
    # A delivery timeout far beyond close()'s: when close() gives up, these two are still waiting
    # for their topic and have no delivery report yet.
    config = {"message.timeout.ms": 120000}
    publisher = open_publisher(impl, kafka.bootstrap_servers, config)
    publish_all(publisher, sent + pending)
    failures, _ = close_publisher(publisher, 2.0, bound=2.0 + CLOSE_SLACK_S)
    did = (f"created ReliablePublisher(config={config}), published {len(sent)} records to a healthy topic and "
           "2 to a topic that does not exist, then called close(2.0)")
    reported = Counter(failed_pairs(failures))
    not_reported = sorted(Counter((t, k) for t, k, _ in pending) - reported)
    if not_reported:
        explain(did=did, seen_in="your close()",
                saw=f"close() reported {sorted(reported, key=repr) or 'nothing'} (topic, key); "
                f"not reported: {not_reported}",
                expected="both records to the missing topic among the failures: when close() stopped waiting "
                "they had not been delivered",
                nudge="when the wait for outstanding deliveries times out, some records have no delivery report "
                "yet and never will from a producer you are closing. The wait's return value tells you how many; "
                "how can each of them still reach the caller's list?")
    extra = sorted((reported - Counter((t, k) for t, k, _ in pending)).elements(), key=repr)
    if extra:
        explain(did=did, saw=f"close() also reported {extra[:4]} as failed", seen_in="your close()",
                expected="only the 2 records to the missing topic, once each",
                nudge="the records on the healthy topic were delivered within the 2 s.")
    _require_once(kafka, good, sent, did.split(", then")[0])


def test_broker_tracks_an_idempotent_producer(kafka, impl):
    """The broker knows one producer id for the records, with sequence numbers counting every record."""
    topic = kafka.create_topic(partitions=3)
    sent = _events(topic, ACCOUNTS[:6], 10)
    publisher = open_publisher(impl, kafka.bootstrap_servers, {})
    publish_all(publisher, sent)
    failures, _ = close_publisher(publisher, 30.0, bound=CLOSE_SLACK_S)
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
