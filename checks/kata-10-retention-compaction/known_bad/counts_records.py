"""Known-bad for kata-10: counts records to find the end of a partition (after compaction, never reached)."""

import time
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DAY_MS = 24 * 3600 * 1000
TIMEOUT_S = 8.0  # gives up sooner than the solution; the misconception is the count below


def retention_configs(metrics_max_bytes: int) -> dict[str, dict[str, str]]:
    return {
        # Delete policy, long time limit, no size limit: an audit trail that drops events
        # when the volume grows would be worthless, so only time may remove them.
        "audit": {"cleanup.policy": "delete", "retention.ms": str(7 * 365 * DAY_MS), "retention.bytes": "-1"},
        # Both bounds: old metrics are worthless, and a burst must not fill the disk.
        # Retention removes whole closed segments only, so a segment must be small next to
        # the size bound, or a partition can hold up to bound + one segment before anything goes.
        "metrics": {"cleanup.policy": "delete", "retention.ms": str(3 * DAY_MS),
                    "retention.bytes": str(metrics_max_bytes),
                    "segment.bytes": str(max(1024 * 1024, metrics_max_bytes // 4))},
        # Only the latest profile per user matters, for as long as the user exists: compaction
        # keeps the last record of each key, and a tombstone removes the key for good.
        "profiles": {"cleanup.policy": "compact"},
        # Latest per key, but a cart untouched for 30 days can go entirely: compaction plus
        # time-based deletion of old segments.
        "carts": {"cleanup.policy": "compact,delete", "retention.ms": str(30 * DAY_MS)},
    }


def create_retention_topics(bootstrap_servers: str, topics: dict[str, str], metrics_max_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    configs = retention_configs(metrics_max_bytes)
    new = [NewTopic(name, num_partitions=1, replication_factor=1, config=configs[scenario])
           for scenario, name in topics.items()]
    for future in admin.create_topics(new).values():
        future.result(timeout=TIMEOUT_S)  # raise the broker's reason if one was refused


def build_table(bootstrap_servers: str, topic: str) -> dict[str, str]:
    # A fresh, never-committing consumer: the table is rebuilt from the start every time.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"table-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        if md.error:
            raise KafkaException(md.error)
        # The mistake: "offsets 0..high-1, so expect `high` records", false once compaction left gaps.
        ends = {}
        for p in md.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        table: dict[str, str] = {}
        counts = {}
        deadline = time.monotonic() + TIMEOUT_S
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {TIMEOUT_S:.0f}s")
            msg = consumer.poll(0.2)
            if msg is None:
                pass
            elif msg.error():
                raise KafkaException(msg.error())
            else:
                key = msg.key().decode("utf-8")
                if msg.value() is None:
                    # A tombstone: the key was deleted. Forget it (it may come back later).
                    table.pop(key, None)
                else:
                    # Records of one key are in offset order within their partition: the
                    # last one read is the current value.
                    table[key] = msg.value().decode("utf-8")
                counts[msg.partition()] = counts.get(msg.partition(), 0) + 1
                if counts[msg.partition()] >= ends[msg.partition()]:
                    del ends[msg.partition()]
        return table
    finally:
        consumer.close()
