"""Helpers for kata-09's hidden checks: a pipeline's topics and inputs, offsets as the broker
reports them per isolation level, and a watcher that follows the output topic."""

from __future__ import annotations

import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from grader.kit import KafkaKit

PARTITIONS = 3
# Short enough that a crashed member leaves the group quickly (the broker allows 1000 ms and up).
# A short auto-commit interval: a consumer left auto-committing shows it within a fraction of a second.
# Tiny fetches: each fetch brings one record batch per partition, so consume() batches mix partitions
# (the input is written one record per batch) and every partition's offset in a transaction matters.
CONSUMER_CONFIG = {"session.timeout.ms": 1500, "heartbeat.interval.ms": 300, "auto.commit.interval.ms": 100,
                   "max.partition.fetch.bytes": 64}
FENCING_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FATAL}


class PoisonRecord(Exception):
    """What the checks' process() raises for the record it cannot handle."""


def expected_output(value: str) -> str:
    return value.upper()


@dataclass
class Pipeline:
    kafka: KafkaKit
    input_topic: str
    output_topic: str
    group_id: str
    transactional_id: str
    inputs: list[str] = field(default_factory=list)
    ghosts: list[str] = field(default_factory=list)

    def kwargs(self, batch_size: int = 5) -> dict:
        return {"bootstrap_servers": self.kafka.bootstrap_servers, "input_topic": self.input_topic,
                "output_topic": self.output_topic, "group_id": self.group_id,
                "transactional_id": self.transactional_id, "batch_size": batch_size,
                "consumer_config": dict(CONSUMER_CONFIG)}

    def call(self, batch_size: int = 5) -> str:
        return (f"run_pipeline(bootstrap_servers, input_topic, output_topic, group_id, transactional_id, process, "
                f"should_stop, batch_size={batch_size}, consumer_config={CONSUMER_CONFIG})")

    @property
    def expected(self) -> set[str]:
        return {expected_output(v) for v in self.inputs}


def make_pipeline(kafka: KafkaKit, count: int, ghosts: int = 0) -> Pipeline:
    """Topics, names and `count` input records; `ghosts` records in an aborted transaction midway."""
    p = Pipeline(kafka, kafka.create_topic(kafka.unique("in"), partitions=PARTITIONS),
                 kafka.create_topic(kafka.unique("out"), partitions=PARTITIONS),
                 kafka.unique("group"), kafka.unique("txn"))
    p.inputs = [f"order-{n:03d}:paid" for n in range(count)]
    half = count // 2
    _produce_one_by_one(kafka, p.input_topic, list(enumerate(p.inputs[:half])))
    if ghosts:
        # Someone else's aborted transaction in the input: a read_committed consumer never sees it.
        p.ghosts = [f"ghost-{n:03d}:aborted" for n in range(ghosts)]
        producer = kafka.producer(**{"transactional.id": kafka.unique("ghost-writer"),
                                     "transaction.timeout.ms": 10000})
        producer.init_transactions(30)
        producer.begin_transaction()
        for n, value in enumerate(p.ghosts):
            producer.produce(p.input_topic, key=f"ghost-{n:03d}", value=value)
        producer.flush(30)
        producer.abort_transaction(30)
    _produce_one_by_one(kafka, p.input_topic, list(enumerate(p.inputs))[half:])
    return p


def _produce_one_by_one(kafka: KafkaKit, topic: str, items: list[tuple[int, str]]) -> None:
    """One record per producer batch, round-robin over the partitions, so that a consumer with tiny
    fetches interleaves partitions within one consume() batch."""
    producer = kafka.producer(**{"linger.ms": 0})
    for n, value in items:
        producer.produce(topic, key=f"order-{n:03d}", value=value, partition=n % PARTITIONS)
        if producer.flush(30):
            raise KafkaException(f"a test record was not delivered to {topic}")


def end_offsets(kafka: KafkaKit, topic: str, committed: bool) -> dict[int, int]:
    """Per partition: the last stable offset (read_committed) or the high watermark (read_uncommitted)."""
    level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    futures = kafka.admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)},
                                       isolation_level=level, request_timeout=10)
    return {tp.partition: f.result().offset for tp, f in futures.items()}


def open_transaction_partitions(kafka: KafkaKit, topic: str) -> list[int]:
    """Partitions whose last stable offset lags the high watermark: an open transaction holds them."""
    stable, high = end_offsets(kafka, topic, True), end_offsets(kafka, topic, False)
    return sorted(p for p in high if stable.get(p, 0) < high[p])


def wait_transactions_closed(kafka: KafkaKit, topic: str, timeout: float) -> list[int]:
    """Wait until no transaction is open on `topic`; returns the partitions still held at the deadline."""
    deadline = time.monotonic() + timeout
    held = [-1]
    while time.monotonic() < deadline:
        try:
            held = open_transaction_partitions(kafka, topic)
        except KafkaException:
            held = [-1]
        if not held:
            return []
        time.sleep(0.1)
    return held


class OutputWatcher:
    """A consumer that follows every partition of a topic from the start, counting values."""

    def __init__(self, kafka: KafkaKit, topic: str, isolation: str):
        self.consumer = kafka.consumer(**{"isolation.level": isolation, "fetch.wait.max.ms": 50})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.seen: Counter[str] = Counter()

    def poll(self, timeout: float = 0.1) -> None:
        for msg in self.consumer.consume(500, timeout=timeout):
            if not msg.error() and msg.value() is not None:
                self.seen[msg.value().decode("utf-8", "replace")] += 1

    def wait_for_value(self, value: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seen[value]:
                return True
            self.poll(0.1)
        return bool(self.seen[value])


class CatchUp:
    """Decides when a pipeline has finished its input: every input committed by the group, or
    every expected output visible to a read_committed reader (whichever comes first)."""

    def __init__(self, p: Pipeline):
        self.p = p
        self.watcher = OutputWatcher(p.kafka, p.output_topic, "read_committed")
        ends = end_offsets(p.kafka, p.input_topic, False)
        self.input_ends = {part: end for part, end in ends.items() if end > 0}
        self.committed: dict[int, int] = {}
        self._next_look = 0.0

    def done(self) -> bool:
        self.watcher.poll(0.05)
        if self.p.expected <= set(self.watcher.seen):
            return True
        if time.monotonic() >= self._next_look:
            self._next_look = time.monotonic() + 0.3
            try:
                self.committed = self.p.kafka.committed(self.p.group_id, self.p.input_topic)
            except KafkaException:
                return False
            return all(self.committed.get(part, -1) >= end for part, end in self.input_ends.items())
        return False

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.done():
                return True
            time.sleep(0.05)
        return False


def tally(p: Pipeline, values: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(inputs with no output, outputs seen more than once, outputs that match no input)."""
    counts = Counter(values)
    missing = [v for v in p.inputs if counts[expected_output(v)] == 0]
    dupes = sorted(v for v, n in counts.items() if n > 1)
    unexpected = sorted(v for v in counts if v not in p.expected)
    return missing, dupes, unexpected


def short(items: list, n: int = 4) -> str:
    return ", ".join(map(str, items[:n])) + (f" … ({len(items)} in all)" if len(items) > n else "")


def next_offsets(records: list[dict]) -> dict[int, int]:
    """Per input partition, the offset after the last of these processed records."""
    out: dict[int, int] = {}
    for rec in records:
        out[rec["partition"]] = max(out.get(rec["partition"], 0), rec["offset"] + 1)
    return out


def group_offsets(kafka: KafkaKit, p: Pipeline) -> dict[int, int]:
    """The group's committed offsets on the input, only partitions that have one. Offsets a transaction
    has sent but not committed yet are not committed offsets (require_stable=False: no waiting for it)."""
    request = ConsumerGroupTopicPartitions(p.group_id, [TopicPartition(p.input_topic, part)
                                                       for part in range(PARTITIONS)])
    futures = kafka.admin.list_consumer_group_offsets([request], require_stable=False, request_timeout=10)
    return {tp.partition: tp.offset for tp in futures[p.group_id].result().topic_partitions
            if tp.offset >= 0 and tp.error is None}


def wait_group_offsets(kafka: KafkaKit, p: Pipeline, want, timeout: float) -> dict[int, int]:
    """Poll until the group's committed offsets equal want() (re-evaluated each time: the commit
    markers that make outputs visible are written just after commit_transaction() returns);
    returns the last offsets seen. An empty dict is "no committed offset anywhere"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = group_offsets(kafka, p)
        except KafkaException:
            seen = {}
        if seen == want() or time.monotonic() >= deadline:
            return seen
        time.sleep(0.1)


def describe_offsets(offsets: dict[int, int]) -> str:
    return ", ".join(f"partition {part}: {off}" for part, off in sorted(offsets.items())) or "none"


def offsets_nudge(seen: dict[int, int], want: dict[int, int]) -> str:
    """Name the likely cause of this particular difference between committed and expected offsets."""
    if not seen:
        return ("the group has no committed offset at all, although transactions committed output. Which call "
                "puts the input offsets into the transaction?")
    if any(seen.get(part, -1) > off for part, off in want.items()) or set(seen) - set(want):
        return ("the group's offsets are ahead of the committed output: they cover records whose transaction "
                "has not committed. Who else commits offsets (auto-commit, consumer.commit())?")
    if all(seen.get(part) == off - 1 for part, off in want.items() if part in seen) and set(seen) == set(want):
        return "a committed offset is the next record to read, not the last one processed."
    return ("offsets are missing or behind on some partitions: a batch holds records of several partitions, "
            "and each of them needs its next offset in the transaction.")


def transaction_timeout_ms(kafka: KafkaKit, transactional_id: str, since_ms: int, timeout: float = 5) -> int | None:
    """transaction.timeout.ms as the transaction coordinator recorded it for this transactional.id (its
    latest record in __transaction_state written since `since_ms`), or None when there is none."""
    topic = "__transaction_state"
    consumer = kafka.consumer(**{"fetch.wait.max.ms": 50})
    try:
        md = kafka.admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error:
            return None
        starts = consumer.offsets_for_times([TopicPartition(topic, part, since_ms) for part in md.partitions],
                                            timeout=10)
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in starts}
        todo = {tp.partition for tp in starts if 0 <= tp.offset < ends[tp.partition]}
        consumer.assign([tp for tp in starts if tp.partition in todo])
        found, deadline = None, time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            key, value = msg.key() or b"", msg.value()
            # key: version int16, transactional.id as int16 length + UTF-8; value: version int16,
            # producer id int64, producer epoch int16, transaction timeout int32, ...
            if value and len(value) >= 16 and key[4:] == transactional_id.encode():
                found = struct.unpack(">hqhi", value[:16])[3]
            if msg.offset() + 1 >= ends[msg.partition()]:
                todo.discard(msg.partition())
        return found
    finally:
        consumer.close()
