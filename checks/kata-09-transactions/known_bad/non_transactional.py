"""Known-bad for kata-09: no transaction at all.

A plain producer, flush() and consumer.commit() after each batch: at-least-once at best.
A batch that fails halfway has already published the output of its first records, and every
read_committed reader sees it (non-transactional records are visible at once).
"""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, Producer


def run_pipeline(bootstrap_servers: str, input_topic: str, output_topic: str, group_id: str,
                 transactional_id: str, process: Callable[[Message], None], should_stop: Callable[[], bool],
                 batch_size: int = 10, consumer_config: dict | None = None) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", **(consumer_config or {})})
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    try:
        consumer.subscribe([input_topic])
        while not should_stop():
            batch = consumer.consume(num_messages=batch_size, timeout=0.5)
            if not batch:
                continue
            for msg in batch:
                if msg.error():
                    raise KafkaException(msg.error())
                producer.produce(output_topic, key=msg.key(), value=msg.value().upper())
                process(msg)
            if producer.flush(30):
                raise KafkaException("output not delivered")
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
