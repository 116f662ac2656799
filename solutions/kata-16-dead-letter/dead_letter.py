"""kata-16 reference solution: route poison pills to a dead-letter topic and keep consuming."""

import json
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Producer


class InvalidOrder(ValueError):
    """The record is JSON, but not an order."""


def parse_order(value: bytes | None) -> dict:
    # Decode first: json.loads(bytes) guesses the encoding from the first bytes and would accept
    # UTF-16 or UTF-32 JSON; the contract is UTF-8. str(value, "utf-8") raises UnicodeDecodeError
    # for other bytes and TypeError for a record without a value; json.loads raises for non-JSON.
    order = json.loads(str(value, "utf-8"))
    amount = order.get("amount") if isinstance(order, dict) else None
    # In Python, True is an int; in JSON, true is not a number.
    if not (isinstance(order, dict) and isinstance(order.get("order_id"), str)
            and isinstance(amount, (int, float)) and not isinstance(amount, bool)):
        raise InvalidOrder("not an order: a JSON object with a string order_id and a numeric amount")
    return order


def dead_letter(producer: Producer, dlq_topic: str, msg, exc: Exception) -> None:
    """Copy the record to the DLQ and return only once the broker has it; raise otherwise."""
    failures = []
    producer.produce(
        dlq_topic,
        # The original record, untouched: key, value bytes and its own headers. Whoever repairs or
        # replays it needs what was really sent (a trace id in a header, the exact bytes).
        key=msg.key(),
        value=msg.value(),
        headers=(msg.headers() or []) + [
            ("dlq.original.topic", msg.topic().encode()),
            ("dlq.original.partition", str(msg.partition()).encode()),
            ("dlq.original.offset", str(msg.offset()).encode()),
            ("dlq.error.class", type(exc).__name__.encode()),
            ("dlq.error.message", str(exc).encode("utf-8", "replace")),
        ],
        on_delivery=lambda err, _msg: failures.append(err) if err is not None else None,
    )
    # Synchronous on purpose: the offset of this record may only be committed once the DLQ
    # has it. Poison pills are rare, so waiting here costs little.
    remaining = producer.flush(30)
    if remaining or failures:
        raise KafkaException(f"DLQ write to {dlq_topic} failed: {failures or 'timed out'}")


def consume_with_dead_letters(bootstrap_servers: str, topic: str, group_id: str, dlq_topic: str,
                              consumer_config: dict, process: Callable[[dict], None],
                              should_stop: Callable[[], bool]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # We commit ourselves, after each record is handled (processed or dead-lettered).
        "enable.auto.commit": False,
        **consumer_config,
    })
    consumer.subscribe([topic])
    try:
        # A short poll timeout: should_stop() is looked at twice a second even when no record comes.
        while not should_stop():
            msg = consumer.poll(0.5)
            # Consumer errors are informational (the client recovers by itself): not records.
            if msg is None or msg.error():
                continue
            try:
                process(parse_order(msg.value()))
            except Exception as exc:  # any failure of this one record makes it a poison pill
                # If the DLQ write fails this raises before the commit below: the record stays
                # uncommitted and is read again after a restart, instead of being lost.
                dead_letter(producer, dlq_topic, msg, exc)
            # Synchronous commit: after a crash the group restarts right after this record,
            # so a dead-lettered record is never dead-lettered twice.
            consumer.commit(message=msg, asynchronous=False)
    finally:
        # Leave the group at once (its partitions go to the other members now, not after the
        # session timeout). Every DLQ write was already confirmed: the producer holds nothing.
        consumer.close()
