"""kata-10 reference solution: a retention policy per use, and a table rebuilt from a compacted topic."""

import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DAY_MS = 24 * 3600 * 1000
TIMEOUT_S = 30.0


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
                    "segment.bytes": str(metrics_max_bytes // 4)},  # >= 1 MiB, the broker's minimum
        # Only the latest profile per user matters, for as long as the user exists: compaction
        # keeps the last record of each key, and a tombstone removes the key for good.
        "profiles": {"cleanup.policy": "compact"},
        # Latest per key, but a cart untouched for 30 days can go entirely: compaction plus
        # time-based deletion of old segments.
        "carts": {"cleanup.policy": "compact,delete", "retention.ms": str(30 * DAY_MS)},
    }


def create_retention_topics(bootstrap_servers: str, topics: dict[str, str], metrics_max_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1,
                                            config=retention_configs(metrics_max_bytes)[scenario])
                                   for scenario, name in topics.items()])
    for future in futures.values():
        future.result(timeout=TIMEOUT_S)  # raise the broker's reason if one was refused


def build_table(bootstrap_servers: str, topic: str) -> dict[str, str]:
    # A fresh group every call: the table is rebuilt from the beginning every time, and
    # nothing it may commit under that group is ever read again.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"table-{uuid.uuid4().hex}"})
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        if md.error:
            raise KafkaException(md.error)
        # Read up to the end as it is now. Stop on the position, not on a message count:
        # compaction leaves gaps in the offsets, so "high - low" records may never arrive.
        ends = {}
        for p in md.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        # The beginning is the log start offset, not offset 0: retention or deleted records may
        # have removed the first offsets (reading offset 0 would then be "out of range").
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        table: dict[str, str] = {}
        # No deadline of its own: every partition's end exists and is reached once the broker
        # has delivered everything before it; a caller that needs a bound can run this in a thread.
        while ends:
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
                    # last one read is the current value (whatever its timestamp says).
                    table[key] = msg.value().decode("utf-8")
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
        return table
    finally:
        consumer.close()
