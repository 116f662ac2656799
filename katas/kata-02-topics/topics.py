"""kata-02: create topics that fit the cluster, idempotently, and grow them on purpose.

Implement the four functions below with confluent_kafka's AdminClient and Producer.
Read README.md first: it gives the exact contract of each function.
"""

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


class TopicConflict(Exception):
    """An existing topic differs from the one asked for. Raise this one (do not rename it)."""


def choose_replication(broker_count: int, wanted_rf: int = 3, wanted_min_isr: int = 2) -> tuple[int, int]:
    """Return (replication_factor, min_insync_replicas) that fit a cluster of `broker_count` brokers.

    Raises ValueError if broker_count < 1.
    """
    # TODO: can a partition have more replicas than there are brokers?
    # TODO: how many in-sync copies can acks=all wait for, at most?
    return wanted_rf, wanted_min_isr


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int, retention_ms: int,
                 wanted_rf: int = 3, wanted_min_isr: int = 2) -> None:
    """Make sure `topic` exists with `partitions` partitions and retention.ms = `retention_ms`.

    Creates it if missing (replication from choose_replication() and the cluster's real
    broker count; topic configs retention.ms and min.insync.replicas). Does nothing if it
    already exists as asked. Raises TopicConflict naming each difference if it exists otherwise.
    Returns once the broker has confirmed the topic exists.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    # TODO: how many brokers does this cluster have? Ask it instead of guessing.
    rf, min_isr = choose_replication(3, wanted_rf, wanted_min_isr)
    # TODO: topic-level configs (retention.ms, min.insync.replicas) go in NewTopic(config=...)
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=rf)])
    # TODO: a topic that already exists is an error here. When is it fine, when is it a conflict?
    futures[topic].result()


def add_partitions(bootstrap_servers: str, topic: str, total: int) -> None:
    """Grow `topic` to `total` partitions.

    Nothing to do if it already has exactly `total`; raises TopicConflict if it has more.
    Returns once the broker has confirmed the new partition count.
    """
    # TODO: AdminClient.create_partitions() with NewPartitions(topic, total)
    raise NotImplementedError("add_partitions")


def key_partitions(bootstrap_servers: str, topic: str, keys: list[str]) -> dict[str, int]:
    """Produce one record per key (key = the key as UTF-8, value = b"probe") to `topic`.

    Returns {key: partition the record landed on}, once every record is delivered;
    raises if any record could not be delivered.
    """
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    landed: dict[str, int] = {}
    for key in keys:
        # TODO: where did each record land? The delivery report knows.
        producer.produce(topic, key=key.encode("utf-8"), value=b"probe")
    producer.flush(30)
    return landed
