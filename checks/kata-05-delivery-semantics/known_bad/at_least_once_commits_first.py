"""Known-bad for kata-05: both consumers commit before processing (the at-least-once one too)."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message


def consume_at_most_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
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
            consumer.commit(message=msg, asynchronous=False)
            process(msg)
    finally:
        consumer.close()


def consume_at_least_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                          should_stop: Callable[[], bool], config: dict | None = None) -> None:
    # "Manual commit is at-least-once": but committing before processing marks the record done too early.
    consume_at_most_once(bootstrap_servers, topic, group_id, process, should_stop, config)
