"""Known-bad for kata-05: "at-most-once is fire-and-forget", so the at-most-once consumer leaves auto-commit on."""

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
    # Auto-commit (the default) commits every 5 s whatever poll() handed out: records processed since the
    # last tick are handed out again after a crash.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", **(config or {})})
    _loop(consumer, topic, process, should_stop, commit_first=None)


def consume_at_least_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                          should_stop: Callable[[], bool], config: dict | None = None) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **(config or {})})
    _loop(consumer, topic, process, should_stop, commit_first=False)
