"""kata-05 reference solution: one consumer loop; the only difference between the two guarantees is
whether a record is committed before or after it is processed."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message


def consume_at_most_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                         should_stop: Callable[[], bool], config: dict | None = None) -> None:
    # Commit first: once the broker has the commit, no restart will ever hand this record out again.
    # A crash during process() loses it; nothing is ever processed twice.
    _consume(bootstrap_servers, topic, group_id, process, should_stop, config, commit_first=True)


def consume_at_least_once(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
                          should_stop: Callable[[], bool], config: dict | None = None) -> None:
    # Commit after: a record is marked done only once it is. A crash between process() and the commit
    # makes the restart process it again; nothing is ever lost.
    _consume(bootstrap_servers, topic, group_id, process, should_stop, config, commit_first=False)


def _consume(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
             should_stop: Callable[[], bool], config: dict | None, commit_first: bool) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        # Both guarantees need us, not a timer, to decide when a record is committed. Auto-commit commits
        # whatever poll() handed out every 5 s: sometimes before processing, sometimes long after, which
        # gives neither guarantee.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **(config or {}),
    })
    consumer.subscribe([topic])
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                # A notice (a partition EOF, a dropped connection the client retries) is skipped. A fatal error
                # (say another instance with our group.instance.id took our place: we are a zombie) ends the
                # consumer; poll() reports it with the code _FATAL (the event's fatal() flag stays False).
                if msg.error().code() == KafkaError._FATAL:
                    raise KafkaException(msg.error())
                continue
            if commit_first:
                # Synchronous: the commit must be on the broker *before* processing starts, or a crash
                # during processing could still find the record uncommitted and repeat it.
                consumer.commit(message=msg, asynchronous=False)
                process(msg)
            else:
                process(msg)
                # Synchronous too: an asynchronous commit still in flight when we crash would not lose
                # anything, but would repeat more than the one record in hand.
                consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
