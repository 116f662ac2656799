"""kata-05: the same consumer twice, at-most-once and at-least-once.

Implement consume_at_most_once() and consume_at_least_once(). They read the same way and call
process() the same way; they differ in one decision. Read README.md first.
"""

from collections.abc import Callable

from confluent_kafka import Consumer, Message


def consume_at_most_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                         should_stop: Callable[[], bool], config: dict | None = None) -> None:
    """Consume `topic` in group `group_id` so that no record is ever processed twice, even across crashes.

    A record whose processing is cut short by a crash may be lost.
    Parameters: see consume_at_least_once.
    """
    # TODO: at-most-once. Where does the commit go, relative to process(msg)?
    _consume_with_auto_commit(bootstrap_servers, topic, group_id, process, should_stop, config)


def consume_at_least_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                          should_stop: Callable[[], bool], config: dict | None = None) -> None:
    """Consume `topic` in group `group_id` so that no record is ever lost, even across crashes.

    A record may be processed twice after a crash.
    bootstrap_servers: where the broker is, e.g. "127.0.0.1:9092".
    topic: the topic to read (it already exists and may already hold records).
    group_id: the consumer group; its committed offsets are where a restart resumes.
    process: call it once per record, with the Message that poll() returned.
    should_stop: check it at least once a second; when it returns True, close the consumer and return.
    config: extra consumer settings (session timings, a static member id); apply them on top of yours.
    Raises: the consumer's fatal error (an event whose error code is KafkaError._FATAL), if it reports one.
    """
    # TODO: at-least-once. Where does the commit go, relative to process(msg)?
    _consume_with_auto_commit(bootstrap_servers, topic, group_id, process, should_stop, config)


def _consume_with_auto_commit(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                              should_stop: Callable[[], bool], config: dict | None) -> None:
    """A starting point: it consumes and processes, and leaves committing to librdkafka's timer."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # TODO: does a timer that commits every 5 seconds give either guarantee?
        **(config or {}),
    })
    consumer.subscribe([topic])
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            process(msg)
    finally:
        consumer.close()
