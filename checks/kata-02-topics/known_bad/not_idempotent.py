"""Known-bad for kata-02: "topic already exists" is an error even for an identical topic."""

import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

TIMEOUT_S = 30.0


class TopicConflict(Exception):
    """An existing topic differs from the one asked for."""


def choose_replication(broker_count: int, wanted_rf: int = 3, wanted_min_isr: int = 2) -> tuple[int, int]:
    if broker_count < 1:
        raise ValueError(f"a cluster with {broker_count} brokers cannot hold a topic")
    # Each replica of a partition must live on a different broker: more replicas than
    # brokers is impossible, and the broker refuses the topic (INVALID_REPLICATION_FACTOR).
    rf = max(1, min(wanted_rf, broker_count))
    # acks=all waits for min.insync.replicas copies; asking for more copies than exist is a
    # promise the topic cannot keep (Kafka 4 quietly caps it, older brokers refuse writes).
    min_isr = max(1, min(wanted_min_isr, rf))
    return rf, min_isr


def _admin(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers})


def _wait_for_partitions(admin: AdminClient, topic: str, partitions: int) -> None:
    # create_topics()/create_partitions() succeed when the controller has decided; clients
    # that start right after must also see every partition with a leader in the metadata.
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=5).topics.get(topic)
        if md and not md.error and len(md.partitions) == partitions and all(
                p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.1)
    raise KafkaException(f"topic {topic} did not get a leader for all {partitions} partitions in {TIMEOUT_S:.0f}s")


def _partition_count(admin: AdminClient, topic: str) -> int:
    md = admin.list_topics(topic, timeout=10).topics[topic]
    if md.error:
        raise KafkaException(md.error)
    return len(md.partitions)


def _topic_config(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource("topic", topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    return {name: entry.value for name, entry in entries.items()}


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int, retention_ms: int,
                 wanted_rf: int = 3, wanted_min_isr: int = 2) -> None:
    admin = _admin(bootstrap_servers)
    # Ask the cluster how big it is instead of assuming: the same code then runs on a
    # laptop with one broker and in production with many.
    broker_count = len(admin.list_topics(timeout=10).brokers)
    rf, min_isr = choose_replication(broker_count, wanted_rf, wanted_min_isr)
    new = NewTopic(topic, num_partitions=partitions, replication_factor=rf,
                   config={"retention.ms": str(retention_ms), "min.insync.replicas": str(min_isr)})
    admin.create_topics([new])[topic].result(timeout=TIMEOUT_S)  # raises TOPIC_ALREADY_EXISTS on a restart
    _wait_for_partitions(admin, topic, partitions)


def _check_existing(admin: AdminClient, topic: str, partitions: int, retention_ms: int) -> None:
    # An existing topic is only fine if it is the topic we would have created; anything else
    # must be loud, or the service runs on a topic with the wrong shape without anyone knowing.
    differences = []
    have_partitions = _partition_count(admin, topic)
    if have_partitions != partitions:
        differences.append(f"partitions: exists with {have_partitions}, asked for {partitions}")
    have_retention = _topic_config(admin, topic).get("retention.ms")
    if have_retention != str(retention_ms):
        differences.append(f"retention.ms: exists with {have_retention}, asked for {retention_ms}")
    if differences:
        raise TopicConflict(f"topic {topic!r} already exists and differs: " + "; ".join(differences))


def add_partitions(bootstrap_servers: str, topic: str, total: int) -> None:
    admin = _admin(bootstrap_servers)
    have = _partition_count(admin, topic)
    if have > total:
        # Kafka can add partitions, never remove them: the records in them would be lost.
        raise TopicConflict(f"topic {topic!r} has {have} partitions; it cannot shrink to {total}")
    if have < total:
        try:
            admin.create_partitions([NewPartitions(topic, total)])[topic].result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            # Someone else grew it to the same size meanwhile: the wanted state is reached.
            if exc.args[0].code() != KafkaError.INVALID_PARTITIONS or _partition_count(admin, topic) != total:
                raise
    _wait_for_partitions(admin, topic, total)


def key_partitions(bootstrap_servers: str, topic: str, keys: list[str]) -> dict[str, int]:
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    landed: dict[str, int] = {}
    errors = []

    def on_delivery(err, msg):
        # The delivery report is the truth about where a record went: the partitioner ran
        # inside the client, with the partition count the client knew at that moment.
        if err is not None:
            errors.append(err)
        else:
            landed[msg.key().decode("utf-8")] = msg.partition()

    for key in keys:
        producer.produce(topic, key=key.encode("utf-8"), value=b"probe", on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    if remaining or errors:
        raise KafkaException(f"{remaining} probes undelivered, {len(errors)} failed: {errors[:3]}")
    return landed
