"""kata-02 reference solution: topics that fit the cluster, created idempotently, grown on purpose."""

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


def _partition_count(admin: AdminClient, topic: str) -> int:
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def _retention_ms(admin: AdminClient, topic: str) -> str:
    resource = ConfigResource("topic", topic)
    return admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)["retention.ms"].value


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int, retention_ms: int,
                 wanted_rf: int = 3, wanted_min_isr: int = 2) -> None:
    admin = _admin(bootstrap_servers)
    # Ask the cluster how big it is instead of assuming: the same code then runs on a
    # laptop with one broker and in production with many.
    broker_count = len(admin.list_topics(timeout=10).brokers)
    rf, min_isr = choose_replication(broker_count, wanted_rf, wanted_min_isr)
    new = NewTopic(topic, num_partitions=partitions, replication_factor=rf,
                   config={"retention.ms": str(retention_ms), "min.insync.replicas": str(min_isr)})
    try:
        # The future resolves once the controller has created the topic. Its partitions get
        # leaders a moment later; clients that start right away wait for them by themselves.
        admin.create_topics([new])[topic].result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        # Creating first and handling "already exists" is race-free: two services starting
        # together cannot both pass a "does it exist?" test and then both create.
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        _check_existing(admin, topic, partitions, retention_ms)


def _check_existing(admin: AdminClient, topic: str, partitions: int, retention_ms: int) -> None:
    # An existing topic is only fine if it is the topic we would have created; anything else
    # must be loud, or the service runs on a topic with the wrong shape without anyone knowing.
    settings = [("partitions", str(_partition_count(admin, topic)), str(partitions)),
                ("retention.ms", _retention_ms(admin, topic), str(retention_ms))]
    differences = [f"{name}: exists with {have}, asked for {asked}" for name, have, asked in settings if have != asked]
    if differences:
        raise TopicConflict(f"topic {topic!r} already exists and differs: " + "; ".join(differences))


def add_partitions(bootstrap_servers: str, topic: str, total: int) -> None:
    admin = _admin(bootstrap_servers)
    have = _partition_count(admin, topic)
    if have < total:
        # NewPartitions takes the new total, not how many to add.
        admin.create_partitions([NewPartitions(topic, total)])[topic].result(timeout=TIMEOUT_S)
    elif have > total:
        # Kafka can add partitions, never remove them: the records in them would be lost.
        raise TopicConflict(f"topic {topic!r} has {have} partitions; it cannot shrink to {total}")


def key_partitions(bootstrap_servers: str, topic: str, keys: list[str]) -> dict[str, int]:
    # A new producer reads the topic's current partition count; one kept from before a topic
    # grew would go on using the old count until its metadata is refreshed.
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
    # flush() sends everything and serves the delivery callbacks; a refused record leaves the
    # queue with an error, so flush()'s count alone would miss it.
    remaining = producer.flush(TIMEOUT_S)
    if remaining or errors:
        raise KafkaException(f"{remaining} probes undelivered, {len(errors)} failed: {errors}")
    return landed
