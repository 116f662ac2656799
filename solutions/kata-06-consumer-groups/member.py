"""kata-06 reference solution: one member of a consumer group, reading only what the group assigns it."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message


def run_member(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
               should_stop: Callable[[], bool], config: dict | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        # The group id is the whole trick: every process that uses the same id is a member of the
        # same group, and the group coordinator hands each partition to exactly one of them.
        "group.id": group_id,
        # A partition the group has never committed for is read from its first message, so nothing
        # written before this member got the partition is skipped.
        "auto.offset.reset": "earliest",
        # The caller's settings win (the checks pass faster heartbeats).
        **(config or {}),
    })
    # subscribe(), not assign(): we name the topic and let the group choose our partitions. It also
    # moves them for us when members come and go.
    consumer.subscribe([topic])
    try:
        while not should_stop():
            # poll() is also where the group's decisions reach us (joining, the assignment): a member
            # that stops polling keeps its partitions but reads nothing. A short timeout keeps
            # should_stop() checked often.
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                # Most consumer errors are notices librdkafka recovers from by itself (a partition EOF, a
                # broker connection dropped, a topic not yet known). A fatal one (another member took our
                # static group.instance.id: we are a zombie) ends the member; poll() reports it with the
                # code _FATAL (the event's fatal() flag stays False).
                if msg.error().code() == KafkaError._FATAL:
                    raise KafkaException(msg.error())
                continue
            process(msg)
    finally:
        # close() leaves the group at once, so the others take over our partitions without waiting
        # for our session to time out (and, with auto-commit on, commits what we consumed).
        consumer.close()
