"""Known-bad for kata-09: every failed batch is logged and skipped, fencing included.

"Abort and carry on" looks robust, but once a newer instance has taken over the
transactional.id this producer can never commit again: it becomes a zombie that keeps
consuming (and holding partitions) without ever making progress.
"""

import contextlib
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition


def run_pipeline(bootstrap_servers: str, input_topic: str, output_topic: str, group_id: str,
                 transactional_id: str, process: Callable[[Message], None], should_stop: Callable[[], bool],
                 batch_size: int = 10, consumer_config: dict | None = None) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", **(consumer_config or {})})
    producer = Producer({"bootstrap.servers": bootstrap_servers, "transactional.id": transactional_id,
                         "transaction.timeout.ms": 10000})
    try:
        producer.init_transactions()
        consumer.subscribe([input_topic])
        while not should_stop():
            batch = consumer.consume(num_messages=batch_size, timeout=0.5)
            if not batch:
                continue
            try:
                producer.begin_transaction()
                next_offsets = {}
                for msg in batch:
                    if msg.error():
                        raise KafkaException(msg.error())
                    producer.produce(output_topic, key=msg.key(), value=msg.value().upper())
                    process(msg)
                    next_offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
                producer.send_offsets_to_transaction(
                    [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                    consumer.consumer_group_metadata())
                producer.commit_transaction()
            except KafkaException as exc:
                print(f"batch failed, skipping it: {exc}")
                with contextlib.suppress(KafkaException):
                    producer.abort_transaction()
    finally:
        consumer.close()
