"""Known-bad for kata-04: leaves librdkafka's auto-commit on (the default) and never commits by hand."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message


def consume(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
            should_stop: Callable[[], bool], config: dict | None = None) -> None:
    # enable.auto.commit defaults to true: every auto.commit.interval.ms (5000) a timer commits the
    # offset of the last record poll() handed out, whether process() has finished with it or not.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", **(config or {})})
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
    finally:
        consumer.close()
