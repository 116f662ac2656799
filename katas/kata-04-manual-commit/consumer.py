"""kata-04: commit by hand, after processing, and resume from the last commit.

Implement consume() so that a record's offset is committed only once process() has finished
with it, and a restarted consumer carries on where the last one stopped. Read README.md first.
"""

from collections.abc import Callable

from confluent_kafka import Consumer, Message


def consume(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
            should_stop: Callable[[], bool], config: dict | None = None) -> None:
    """Consume `topic` as a member of `group_id`, calling process(msg) for every record.

    bootstrap_servers: where the broker is, e.g. "127.0.0.1:9092".
    topic: the topic to read (it already exists and may already hold records).
    group_id: the consumer group; its committed offsets are where a restart resumes.
    process: call it once per record, with the Message that poll() returned.
    should_stop: check it at least once a second; when it returns True, close the consumer and return.
    config: extra consumer settings (session timings, a static member id); apply them on top of yours.
    Raises: the consumer's fatal error (an event whose error code is KafkaError._FATAL), if it reports one.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # TODO: who decides when an offset is committed? librdkafka's default is a timer.
        **(config or {}),
    })
    consumer.subscribe([topic])
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            process(msg)
            # TODO: tell the group this record is done, and only once process() has returned.
            #       Which offset marks "done with this one": msg.offset(), or the next one?
    finally:
        consumer.close()
