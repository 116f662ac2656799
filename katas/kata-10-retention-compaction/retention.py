"""kata-10: choose a retention policy per use, and rebuild a table from a compacted topic.

Part A: create_retention_topics() creates one topic per scenario with the right
cleanup.policy / retention settings. Part B: build_table() reads a compacted topic into a
dict of the latest value per key. Read README.md first: it gives the exact contract.
"""

import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DAY_MS = 24 * 3600 * 1000


def create_retention_topics(bootstrap_servers: str, topics: dict[str, str], metrics_max_bytes: int) -> None:
    """Create one topic per scenario: `topics` maps "audit", "metrics", "profiles", "carts" to a topic name.

    metrics_max_bytes: the most the metrics topic may keep per partition (at least 4 MiB).
    Raises if the broker refuses any of the topics.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    configs = {
        # TODO: one config dict per scenario (cleanup.policy, retention.ms, retention.bytes, ...).
        #       Values are strings. What does each scenario need to keep, and for how long?
        "audit": {},
        "metrics": {},
        "profiles": {},
        "carts": {},
    }
    new = [NewTopic(name, num_partitions=1, replication_factor=1, config=configs[scenario])
           for scenario, name in topics.items()]
    for future in admin.create_topics(new).values():
        future.result()


def build_table(bootstrap_servers: str, topic: str) -> dict[str, str]:
    """Read `topic` from the beginning of every partition up to its current end.

    Returns {key: latest value} (both decoded from UTF-8); a key whose latest record is a
    tombstone (value None) is not in the table.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"table-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    table: dict[str, str] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        # TODO: where does each partition end right now? Stop when you reach it.
        # TODO: apply each record in order: a value sets the key, a tombstone (value None) deletes it.
    finally:
        consumer.close()
    return table
