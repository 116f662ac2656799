"""Known-bad for kata-16: lets the first poison pill's exception escape, so the consumer stops."""

import json
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Producer


class InvalidOrder(ValueError):
    """The record is JSON, but not an order."""


def parse_order(value: bytes | None) -> dict:
    if value is None:
        raise InvalidOrder("the record has no value")
    order = json.loads(value)  # raises on bytes that are not UTF-8 JSON
    if not isinstance(order, dict):
        raise InvalidOrder(f"expected a JSON object, got {type(order).__name__}")
    if not isinstance(order.get("order_id"), str):
        raise InvalidOrder("missing or non-string field 'order_id'")
    amount = order.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise InvalidOrder("missing or non-numeric field 'amount'")
    return order


def dead_letter(producer: Producer, dlq_topic: str, msg, exc: Exception) -> None:
    """Copy the record to the DLQ and return only once the broker has it; raise otherwise."""
    failures = []
    producer.produce(
        dlq_topic,
        # The original bytes, untouched: whoever repairs the record needs what was really sent.
        key=msg.key(),
        value=msg.value(),
        headers=[
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
        raise KafkaException(failures[0] if failures else f"DLQ write to {dlq_topic} timed out")


def consume_with_dead_letters(bootstrap_servers: str, topic: str, group_id: str, dlq_topic: str,
                              consumer_config: dict, process: Callable[[dict], None],
                              should_stop: Callable[[], bool]) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # We commit ourselves, after each record is handled (processed or dead-lettered).
        "enable.auto.commit": False,
        **consumer_config,
    })
    # Idempotent: a retried DLQ write cannot create a second copy.
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    consumer.subscribe([topic])
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                continue  # informational (e.g. partition EOF)
            process(parse_order(msg.value()))  # "bad data should fail loudly"
            # Synchronous commit: after a crash the group restarts right after this record,
            # so a dead-lettered record is never dead-lettered twice.
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
        producer.flush(10)
