"""Kafka helpers for hidden checks: unique names, topics that are really ready, reading
topics the way a Kafka user would, and failure messages that teach.

Checks get a `kafka` fixture (a KafkaKit) from grader.pytest_plugin.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from grader.clientroute import client_config, own_prefix

QUIET = {"log_level": 0}  # librdkafka's own log lines would drown the report


def explain(did: str, saw: str, expected: str, nudge: str = "", seen_in: str = "the broker") -> None:
    """Fail the current check with a message a learner can act on.

    did: what the check did (the call); saw: what `seen_in` showed (the broker, unless the
    evidence came from elsewhere: "the database", "your function's return value"); expected:
    what the check needed; nudge: points toward the concept, never the answer.
    """
    lines = [f"What the check did: {did}", f"What {seen_in} showed: {saw}", f"Expected: {expected}"]
    if nudge:
        lines.append(f"Think about: {nudge}")
    pytest.fail("\n".join(lines), pytrace=False)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None
    timestamp: int

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", "replace")

    @property
    def value_text(self) -> str | None:
        return None if self.value is None else self.value.decode("utf-8", "replace")


def to_record(msg: Message) -> Record:
    return Record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers(),
                  msg.timestamp()[1])


class KafkaKit:
    """One per check: names no other check (or earlier run) can collide with."""

    def __init__(self, bootstrap_servers: str, prefix: str):
        self.bootstrap_servers = bootstrap_servers
        self.prefix = own_prefix(prefix)  # a check's own `kk-<run id>-...` prefix, under the chosen one
        self.admin = AdminClient(client_config({"bootstrap.servers": bootstrap_servers, **QUIET}))
        self.created_topics: list[str] = []
        self._clients: list = []

    # ---- names -------------------------------------------------------------------------
    def unique(self, name: str) -> str:
        return f"{self.prefix}-{name}-{uuid.uuid4().hex[:8]}"

    # ---- topics ------------------------------------------------------------------------
    def create_topic(self, name: str | None = None, partitions: int = 1, config: dict | None = None,
                     replication_factor: int = 1) -> str:
        """Create a topic and wait until every partition has a leader."""
        topic = name or self.unique("topic")
        futures = self.admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                                     replication_factor=replication_factor,
                                                     config=config or {})])
        futures[topic].result(timeout=30)
        self.created_topics.append(topic)
        self.wait_for_leaders(topic, partitions)
        return topic

    def wait_for_leaders(self, topic: str, partitions: int, timeout: float = 30.0) -> None:
        def ready() -> bool:
            md = self.admin.list_topics(topic, timeout=5).topics.get(topic)
            return bool(md and not md.error and len(md.partitions) == partitions
                        and all(p.leader >= 0 for p in md.partitions.values()))
        wait_for(ready, timeout, f"topic {topic} to have a leader for all {partitions} partitions")

    def partition_count(self, topic: str) -> int:
        md = self.admin.list_topics(topic, timeout=10).topics.get(topic)
        return len(md.partitions) if md and not md.error else 0

    # ---- clients -----------------------------------------------------------------------
    def producer(self, **config) -> Producer:
        return Producer(client_config({"bootstrap.servers": self.bootstrap_servers, **QUIET, **config}))

    def consumer(self, group: str | None = None, **config) -> Consumer:
        consumer = Consumer(client_config({"bootstrap.servers": self.bootstrap_servers, **QUIET,
                                           "group.id": group or self.unique("reader"),
                                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                           **config}))
        self._clients.append(consumer)
        return consumer

    def read_all(self, topic: str, timeout: float = 15.0, isolation: str = "read_committed") -> list[Record]:
        """Read a topic from the beginning like a fresh consumer would.

        Reads up to the end offsets seen when the call starts (so duplicates are seen
        too), or until `timeout` (e.g. an open transaction holds back a read_committed
        reader at the last stable offset).
        """
        consumer = self.consumer(**{"isolation.level": isolation, "fetch.wait.max.ms": 50})
        partitions = self.partition_count(topic)
        ends = {p: self.high_watermark(consumer, topic, p) for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p] > 0])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        try:
            while ends and any(ends.values()) and time.monotonic() < deadline:
                msg = consumer.poll(0.05)
                if msg is not None and not msg.error():
                    records.append(to_record(msg))
                elif msg is None and self._reached(consumer, ends):
                    break
        finally:
            consumer.close()
            self._clients.remove(consumer)
        return records

    @staticmethod
    def high_watermark(consumer: Consumer, topic: str, partition: int) -> int:
        # A just-created partition can briefly answer NOT_LEADER from a stale metadata cache.
        for attempt in range(50):
            try:
                return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)[1]
            except KafkaException:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        return 0

    @staticmethod
    def _reached(consumer: Consumer, ends: dict[int, int]) -> bool:
        """True when the consumer's position is at the high watermark of every non-empty partition."""
        for tp in consumer.position(consumer.assignment()):
            end = ends.get(tp.partition, 0)
            if end > 0 and tp.offset < end:
                return False
        return True

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Committed offsets of a group, per partition (-1001, OFFSET_INVALID, when none)."""
        consumer = self.consumer(group=group)
        try:
            parts = [TopicPartition(topic, p) for p in range(self.partition_count(topic))]
            return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        finally:
            consumer.close()
            self._clients.remove(consumer)

    def produce(self, topic: str, items: Iterable[tuple[str | None, str | None]], **config) -> None:
        producer = self.producer(**config)
        for key, value in items:
            producer.produce(topic, key=key, value=value)
        remaining = producer.flush(30)
        if remaining:
            raise KafkaException(f"{remaining} test messages were not delivered to {topic}")

    def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        if self.created_topics:
            # Keep a shared broker light; a failed delete is harmless. Wait for the answers: an
            # AdminClient freed while librdkafka's background thread still resolves its futures
            # aborts the process ("rd_kafka_destroy() called from librdkafka owned thread",
            # SIGABRT) when the garbage collector happens to run on that thread.
            with contextlib.suppress(Exception):
                futures = self.admin.delete_topics(self.created_topics, operation_timeout=5)
                for future in futures.values():
                    with contextlib.suppress(Exception):
                        future.result(timeout=10)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> bool:
    """Poll until condition() is true; on timeout fail with what was still missing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except KafkaException:
            pass
        time.sleep(interval)
    pytest.fail(f"Timed out after {timeout:.0f}s waiting for {what}.", pytrace=False)
    return False
