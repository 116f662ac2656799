"""Hidden checks for kata-17 (producer throughput). Never shown to learners.

One benchmark (module fixture) publishes the same events with the naive configuration and with
the learner's, in alternating rounds on the same broker, then reads both topics back. The checks
compare the two sides as ratios measured in that same run, never against an absolute time.
"""

import json
import os
import time
from collections import Counter, defaultdict

import pytest
from _kata17_support import (
    BYTES_RATIO,
    EVENTS_PER_ROUND,
    NAIVE_CONFIG,
    PARTITIONS,
    REQUESTS_RATIO,
    ROUNDS,
    TIME_RATIO,
    StatsProducer,
    acks_of,
    expected_sequences,
    load_config,
    make_events,
    read_back,
    refused,
    run_benchmark,
)
from confluent_kafka import KafkaException, Producer

from grader.kit import QUIET, KafkaKit, explain, load_learner_module
from grader.kit.protocolproxy import PRODUCE, BigClusterProxy

# How long the proxy holds each of the broker's answers to a Produce request in the slow-broker round: longer
# than any short wait a publish() might end with, so returning early is seen every time, not by luck.
SLOW_ANSWER_S = 2.5

WORKLOAD = f"{ROUNDS} rounds of {EVENTS_PER_ROUND} JSON page-view events (24 user keys, {PARTITIONS} partitions)"


@pytest.fixture(scope="module")
def bench(bootstrap_servers, impl_path, pytestconfig):
    impl = load_learner_module(impl_path)
    run_id = pytestconfig.getoption("--kata-run-id") or "local"
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{run_id}-k17")
    try:
        result = run_benchmark(kit, impl)
        if not result.failure:
            print(result.summary())
        yield result
    finally:
        kit.close()


def test_keeps_acks_all_and_idempotence(kafka, impl):
    """Your configuration keeps acks=all and idempotence: the broker acknowledges and assigns a producer id."""
    config, failure = load_config(impl, keep_bootstrap=True)
    if failure:
        explain(**failure)
    if "bootstrap.servers" in config:
        explain(did="called producer_config()", saw=f"bootstrap.servers={config['bootstrap.servers']!r} in it",
                expected="no bootstrap.servers: the caller adds it", seen_in="your function's return value")
    try:
        # librdkafka itself refuses enable.idempotence with any acks but all: the first behavioural test.
        sp = StatsProducer(kafka.bootstrap_servers, config)
    except (KafkaException, TypeError, ValueError) as exc:
        explain(**refused(exc))
    topic = kafka.create_topic(partitions=1)
    reports = []
    sp.producer.produce(topic, key=b"probe", value=b"{}", on_delivery=lambda err, msg: reports.append((err, msg)))
    sp.producer.flush(20)
    did = "built a producer from your producer_config(), produced one record and read its delivery report"
    if not reports or reports[0][0] is not None:
        explain(did=did, saw=f"delivery failed: {reports[0][0] if reports else 'no delivery report at all'}",
                expected="the record delivered")
    offset = reports[0][1].offset()
    if offset is None or offset < 0:
        explain(did=did, saw=f"the delivery report has no offset (acks={acks_of(config)}): the broker never "
                "confirmed the write, the producer just assumed it",
                expected="an acknowledged record (acks=all)",
                nudge="not waiting for the broker looks fast because nothing is checked. Batching and "
                "compression make a producer fast without giving up the acknowledgement.")
    # An idempotent producer gets its id before its first batch can be sent: by now it has one.
    producer_id = sp.wait_for_producer_id(3)
    if producer_id < 0:
        in_flight = config.get("max.in.flight.requests.per.connection", config.get("max.in.flight", "default"))
        explain(did=did + ", and asked librdkafka which producer id the broker assigned",
                saw=f"none (enable.idempotence={config.get('enable.idempotence', 'unset')}, acks={acks_of(config)}, "
                f"max.in.flight.requests.per.connection={in_flight})",
                expected="a producer id from the broker: idempotence on (which requires acks=all)",
                nudge="with several requests in flight, a retried batch can be written twice, or land after a "
                "later batch of the same partition. What lets the broker spot and order retried batches? "
                "(acks=1 would lose acknowledged records with a leader that dies; idempotence needs acks=all.)")


def test_publish_raises_when_events_cannot_be_delivered(kafka, impl):
    """publish() raises when the broker refuses the events, instead of returning as if they were delivered."""
    config, failure = load_config(impl)
    if failure:
        explain(**failure)
    # The broker refuses every batch: each event is larger than the topic allows, even compressed.
    topic = kafka.create_topic(partitions=2, config={"max.message.bytes": "512"})
    events = [(f"user-{i % 4:03d}".encode(), os.urandom(1200)) for i in range(20)]
    try:
        producer = Producer({**config, "bootstrap.servers": kafka.bootstrap_servers, **QUIET})
    except (KafkaException, TypeError, ValueError) as exc:
        explain(**refused(exc))
    did = (f"called publish(producer, topic, <{len(events)} events of 1200 random bytes>) on a topic whose "
           "max.message.bytes=512 refuses every one of them")
    started = time.monotonic()
    try:
        impl.publish(producer, topic, events)
    except Exception:  # noqa: BLE001 - any exception is the answer wanted here
        return
    explain(did=did, saw=f"publish() returned normally after {time.monotonic() - started:.1f}s",
            seen_in="your function", expected="publish() raises: no event could be delivered",
            nudge="flush() returns when nothing is left in the queue, delivered or failed. Where does a failed "
            "delivery become visible?")


def test_publish_copes_with_a_full_producer_queue(kafka, impl):
    """With a local queue of 64 records, publish() waits for room instead of failing or dropping events."""
    config, failure = load_config(impl)
    if failure:
        explain(**failure)
    topic = kafka.create_topic(partitions=PARTITIONS)
    events = make_events(0)[:640]  # ten times the queue
    try:
        # linger.ms: a batch of 64 waits 300 ms before it leaves, so the queue is full for certain, however slow
        # each produce() call is (through the learner host, on a busy machine), and stays full until it drains.
        producer = Producer({**config, "bootstrap.servers": kafka.bootstrap_servers, **QUIET,
                             "queue.buffering.max.messages": 64, "linger.ms": 300})
    except (KafkaException, TypeError, ValueError) as exc:
        explain(**refused(exc))
    did = (f"called publish(producer, topic, <{len(events)} events>) with a producer built from your "
           "producer_config() plus queue.buffering.max.messages=64 and linger.ms=300 (a full queue makes produce() "
           "raise BufferError)")
    try:
        impl.publish(producer, topic, events)
    except Exception as exc:  # the learner's code failed: say so in their terms
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", seen_in="your function",
                expected="publish() delivers every event",
                nudge="a full local queue is back pressure, not a failure: let the producer deliver some (poll) "
                "and try the same event again.")
    records, _ = read_back(kafka.bootstrap_servers, topic)
    got = Counter(json.loads(r.value)["event_id"] for r in records)
    if len(got) != len(events) or any(n > 1 for n in got.values()):
        explain(did=did + ", then read the topic", saw=f"{len(records)} records, {len(got)} distinct events",
                expected=f"{len(events)} events, each once",
                nudge="what happens to the event whose produce() raised BufferError?")


def test_every_event_arrives_once_in_key_order(bench, kafka, impl):
    """Every event arrives once, keyed, in key order on one partition, and publish() waits out a slow broker."""
    bench.require()
    check_events_on_topic(bench)
    check_waits_for_a_slow_broker(kafka, impl, bench.config)


def check_waits_for_a_slow_broker(kafka, impl, config: dict) -> None:
    """On a fast broker a publish() that stops after a short wait may find everything delivered by luck; here
    no delivery report can arrive before SLOW_ANSWER_S, so one that returns sooner is caught every time."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    events = make_events(ROUNDS)[:48]
    real = next(iter(kafka.admin.list_topics(timeout=10).brokers.values()))
    proxy = BigClusterProxy(real.host, real.port, real.id, 1)
    did = (f"called publish(producer, topic, <{len(events)} events>) with a producer built from your "
           f"producer_config(), the broker's answer to each Produce request held {SLOW_ANSWER_S} s on its way "
           "back (a busy broker), and asked the producer how many records it still held once publish() returned")
    try:
        try:
            producer = Producer({**config, "bootstrap.servers": proxy.bootstrap, **QUIET})
        except (KafkaException, TypeError, ValueError) as exc:
            explain(**refused(exc))
        producer.list_topics(topic, timeout=10)  # connection and metadata before the clock starts
        proxy.hold_responses[PRODUCE] = SLOW_ANSWER_S
        started = time.monotonic()
        try:
            impl.publish(producer, topic, events)
        except Exception as exc:  # the learner's code failed: say so in their terms
            explain(did=did, saw=f"it raised {type(exc).__name__} after {time.monotonic() - started:.1f} s: {exc}",
                    seen_in="your function", expected="publish() waits for the answers and returns normally: "
                    f"every event is delivered, {SLOW_ANSWER_S} s late",
                    nudge="a slow answer is not a failed delivery: does publish() stop waiting after a fixed "
                    "time, or does your configuration give up on a record after only a second or two?")
        elapsed, pending = time.monotonic() - started, producer.flush(0)
        answered = proxy.answered.get(PRODUCE, 0)
        if pending:
            explain(did=did, saw=f"publish() returned after {elapsed:.1f} s with {pending} records still in the "
                    f"producer ({answered} Produce answers had reached it)",
                    expected="0: publish() returns only once every event is delivered",
                    nudge="a poll(timeout) or a loop that ends after a while only looks done when the broker is "
                    "quick. What waits until the queue is empty, however long that takes?")
        producer.flush(30)
    finally:
        proxy.close()


def check_events_on_topic(bench) -> None:
    records = sorted(bench.tuned.records, key=lambda r: (r.partition, r.offset))
    did = f"published {WORKLOAD} with your publish() and producer_config(), then read the topic back"
    seen: dict[str, int] = defaultdict(int)
    actual: dict[str, list[tuple[int, int]]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in records:
        try:
            event = json.loads(r.value)
        except (TypeError, ValueError):
            explain(did=did, saw=f"partition {r.partition} offset {r.offset} holds {r.value!r:.60}",
                    expected="each value exactly as publish() received it")
        seen[event["event_id"]] += 1
        if r.key != event["user"].encode():
            explain(did=did, saw=f"event {event['event_id']} of {event['user']} has key {r.key!r}",
                    expected=f"key {event['user'].encode()!r}, the key publish() was given with it",
                    nudge="keyless records fill batches fastest, but the key is what keeps one user's events "
                    "on one partition, in order.")
        actual[event["user"]].append((event["round"], event["seq"]))
        partitions[event["user"]].add(r.partition)
    dupes = sorted(e for e, n in seen.items() if n > 1)
    if len(seen) != bench.expected_events or dupes:
        explain(did=did, saw=f"{len(records)} records: {len(seen)} distinct events, {len(dupes)} duplicated "
                f"(e.g. {dupes[:3]})",
                expected=f"{bench.expected_events} events, each exactly once",
                nudge="produce() only queues a record; does publish() return before everything is delivered?")
    for user, want in expected_sequences(bench.rounds).items():
        if len(partitions[user]) > 1:
            explain(did=did, saw=f"{user}'s events are spread over partitions {sorted(partitions[user])}",
                    expected="each user's events on one partition", nudge="what decides a record's partition?")
        if actual[user] != want:
            first = next((i for i, (a, w) in enumerate(zip(actual[user], want, strict=False)) if a != w),
                         min(len(actual[user]), len(want)))
            explain(did=did + ", in offset order",
                    saw=f"{user}'s events as (round, seq): …{actual[user][max(0, first - 1):first + 3]}",
                    expected=f"…{want[max(0, first - 1):first + 3]} (the order publish() received them)",
                    nudge="with several requests in flight, only the idempotent producer guarantees that a "
                    "retried batch cannot overtake a later one.")


def test_fewer_larger_produce_requests(bench):
    """Your producer packs at least 10 times as many records into each Produce request as the naive one."""
    bench.require_all_delivered("how the records were sent")
    naive, tuned = bench.naive, bench.tuned
    ratio = tuned.records_per_request / naive.records_per_request if naive.records_per_request else 0.0
    print(f"records per Produce request: naive {naive.records_per_request:.1f}, yours "
          f"{tuned.records_per_request:.1f} ({ratio:.1f}x)")
    if tuned.requests == 0:
        explain(did=f"published {WORKLOAD} through the producer handed to publish(), counting its Produce requests",
                saw="that producer sent no Produce request at all",
                expected="publish() sends with the producer it is given (the checks measure that one)")
    if ratio < REQUESTS_RATIO:
        explain(did=f"published {WORKLOAD} with the naive config and with yours, and counted the Produce "
                "requests each producer sent to the broker",
                saw=f"naive: {naive.requests} requests, {naive.records_per_request:.1f} records each; yours: "
                f"{tuned.requests} requests, {tuned.records_per_request:.1f} records each ({ratio:.1f}x)",
                expected=f"at least {REQUESTS_RATIO:.0f}x as many records per request as the naive config",
                nudge="a batch is sent when it is full or when its linger time is up, and flush() sends every "
                "open batch at once. Which settings let a batch grow, and does publish() let it (no flush() "
                "or blocking poll() per record)?")


def test_broker_stores_fewer_bytes(bench):
    """The broker stores and serves your events in at most a third of the naive producer's bytes."""
    bench.require_all_delivered("their size on the broker")
    naive, tuned = bench.naive, bench.tuned
    ratio = naive.bytes_per_record / tuned.bytes_per_record if tuned.bytes_per_record else 0.0
    print(f"bytes per record served by the broker: naive {naive.bytes_per_record:.0f}, yours "
          f"{tuned.bytes_per_record:.0f} ({ratio:.1f}x smaller)")
    if ratio < BYTES_RATIO:
        compressed = str(bench.config.get("compression.type", bench.config.get("compression.codec", "none")))
        explain(did=f"published the same {WORKLOAD} with the naive config and with yours, then read both "
                "topics from the start and counted the bytes the broker sent (the batches as it stored them)",
                saw=f"naive: {naive.served_bytes} bytes ({naive.bytes_per_record:.0f} per record); yours: "
                f"{tuned.served_bytes} bytes ({tuned.bytes_per_record:.0f} per record), {ratio:.1f}x smaller "
                f"(compression.type={compressed})",
                expected=f"at least {BYTES_RATIO:.0f}x fewer bytes per record than the naive config",
                nudge="the producer compresses whole batches, and the broker stores them as they come. What "
                "does a compressor find to remove in a batch of one or two records, and in a batch of hundreds?")


def test_publishing_beats_the_naive_time(bench):
    """Your median publish time is at most half the naive one, measured side by side in the same run."""
    bench.require_all_delivered("the time it took")
    naive, tuned = bench.naive, bench.tuned
    ratio = naive.median_ms / tuned.median_ms if tuned.median_ms else float("inf")
    rounds = ", ".join(f"{n * 1000:.0f}/{t * 1000:.0f}" for n, t in zip(naive.times, tuned.times, strict=True))
    print(f"publish time per round, naive/yours in ms: {rounds}; medians {naive.median_ms:.1f}/"
          f"{tuned.median_ms:.1f} ({ratio:.1f}x)")
    if ratio < TIME_RATIO:
        explain(did=f"timed publish() for {WORKLOAD}, alternating the naive config and yours on the same "
                "broker, and compared the median round of each",
                saw=f"naive/yours per round (ms): {rounds}; medians {naive.median_ms:.1f} / {tuned.median_ms:.1f} "
                f"ms ({ratio:.1f}x)",
                expected=f"yours at least {TIME_RATIO:.0f}x faster than the naive config (naive starting point: "
                f"{NAIVE_CONFIG})",
                nudge="the naive producer waits for one small request at a time. Where does your publish() "
                "or your configuration still wait per record?")
