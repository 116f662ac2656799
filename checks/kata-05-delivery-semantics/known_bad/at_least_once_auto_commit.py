"""Known-bad for kata-05: the at-least-once consumer relies on auto-commit."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message


def _loop(consumer: Consumer, topic: str, process, should_stop, commit_first: bool | None) -> None:
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
            if commit_first:
                consumer.commit(message=msg, asynchronous=False)
            process(msg)
            if commit_first is False:
                consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()


def consume_at_most_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                         should_stop: Callable[[], bool], config: dict | None = None) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **(config or {})})
    _loop(consumer, topic, process, should_stop, commit_first=True)


def consume_at_least_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                          should_stop: Callable[[], bool], config: dict | None = None) -> None:
    # "Auto-commit only commits what I have already polled, so it is at-least-once": but it commits what
    # poll() handed out, not what process() finished.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "enable.auto.commit": True, "auto.offset.reset": "earliest", **(config or {})})
    _loop(consumer, topic, process, should_stop, commit_first=None)
