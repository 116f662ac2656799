"""kata-04 reference solution: auto-commit off, commit each record synchronously after process()."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message


def consume(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
            should_stop: Callable[[], bool], config: dict | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        # librdkafka's default is to auto-commit on a 5 s timer whatever poll() has handed out, finished
        # or not: a crash mid-processing would then skip a record. We decide when a record is done.
        "enable.auto.commit": False,
        # A group with no committed offset yet would otherwise start at the end ("latest") and never see
        # the records already in the topic.
        "auto.offset.reset": "earliest",
        # (No "max.poll.records": that is the Java client's batch size. librdkafka 2.16 knows it only for
        # share consumers and ignores it here; a batch would come from consume(num_messages=...).)
        **(config or {}),
    })
    consumer.subscribe([topic])
    try:
        while not should_stop():
            # A short timeout keeps should_stop() checked at least twice a second.
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                # Most consumer errors are informational (the client retries by itself), a partition EOF for
                # one. A fatal one means this consumer can no longer work: for instance another instance with
                # our group.instance.id took our place, and we are a zombie. poll() reports it as an event with
                # the code _FATAL (that event's fatal() flag stays False: only error_cb sees it set).
                if msg.error().code() == KafkaError._FATAL:
                    raise KafkaException(msg.error())
                continue
            process(msg)
            # Only now is the record done. commit(message=msg) commits msg.offset() + 1, the *next* record
            # to read. Synchronous: the commit has reached the broker before we take another record, so a
            # crash can only ever repeat the one record in hand, never skip it.
            consumer.commit(message=msg, asynchronous=False)
    finally:
        # close() leaves the group at once, so its partitions are handed over without waiting for a timeout.
        consumer.close()
