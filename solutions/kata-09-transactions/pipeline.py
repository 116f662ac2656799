"""kata-09 reference solution: one Kafka transaction per batch carries the output records
AND the input offsets, so a batch is either entirely done or entirely not done."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition


def transform(value: bytes) -> bytes:
    return value.upper()


def run_pipeline(bootstrap_servers: str, input_topic: str, output_topic: str, group_id: str,
                 transactional_id: str, process: Callable[[Message], None], should_stop: Callable[[], bool],
                 batch_size: int = 10, consumer_config: dict | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # Progress is recorded by the transaction (send_offsets_to_transaction), never by the
        # consumer: an auto-commit could mark records consumed whose output is later aborted.
        "enable.auto.commit": False,
        # The input may itself be written by transactions: never pass on records that were aborted.
        "isolation.level": "read_committed",
        **(consumer_config or {}),
    })
    producer = Producer({
        "bootstrap.servers": bootstrap_servers,
        # A transactional.id turns on idempotence and acks=all, and names this pipeline instance
        # across restarts: the broker uses it to find and clean up what a crashed instance left.
        "transactional.id": transactional_id,
        # An abandoned transaction holds back every read_committed reader of the output until the
        # broker aborts it; keep that window short.
        "transaction.timeout.ms": 10000,
    })
    try:
        # Once, before consuming anything: bumps the producer epoch, which aborts the transaction a
        # crashed predecessor left open and fences any older instance still running with this id.
        producer.init_transactions()
        consumer.subscribe([input_topic])
        while not should_stop():
            batch = consumer.consume(num_messages=batch_size, timeout=0.5)
            if batch:
                _process_batch(consumer, producer, batch, output_topic, process)
    finally:
        # Leave the group now, so the partitions move to another instance without waiting for a
        # session timeout. (Never runs on SIGKILL, which is exactly what the broker copes with.)
        consumer.close()


def _process_batch(consumer: Consumer, producer: Producer, batch: list[Message], output_topic: str,
                   process: Callable[[Message], None]) -> None:
    producer.begin_transaction()
    try:
        for msg in batch:
            if msg.error():
                raise KafkaException(msg.error())
            producer.produce(output_topic, key=msg.key(), value=transform(msg.value()))
            process(msg)
        # The heart of exactly-once: the input offsets are written by the transaction coordinator,
        # atomically with the output. The group metadata lets the broker reject the commit if this
        # consumer has lost its partitions to a rebalance in the meantime.
        producer.send_offsets_to_transaction(
            [TopicPartition(topic, partition, offset) for (topic, partition), offset in _next_offsets(batch).items()],
            consumer.consumer_group_metadata())
        producer.commit_transaction()
    except Exception:
        # Output and offsets disappear together: read_committed readers never see this batch, and
        # the group's offsets still point at its first record, so it is read again after a restart.
        # After a fatal error (fenced: another instance owns this transactional.id now) there is
        # nothing left to abort: abort_transaction() raises that same fatal error, which is what
        # the caller must see, and this instance stops either way.
        producer.abort_transaction()
        raise


def _next_offsets(batch: list[Message]) -> dict[tuple[str, int], int]:
    # A committed offset is the *next* record to read, not the last one processed; within a
    # partition the batch is in offset order, so the last record of each partition wins.
    return {(msg.topic(), msg.partition()): msg.offset() + 1 for msg in batch}
