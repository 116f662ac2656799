"""Known-bad for kata-04: commits the offset of the record it just processed, not the next one to read."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition


def consume(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
            should_stop: Callable[[], bool], config: dict | None = None) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **(config or {})})
    consumer.subscribe([topic])
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                continue
            process(msg)
            # "Commit the offset I processed": but a committed offset is the next record to read.
            consumer.commit(offsets=[TopicPartition(msg.topic(), msg.partition(), msg.offset())],
                            asynchronous=False)
    finally:
        consumer.close()
