"""kata-19 reference solution: acks=all and idempotence, acknowledgements only from delivery reports,
failures returned to the caller."""

from collections.abc import Callable, Iterable

from confluent_kafka import Producer


def publish(bootstrap_servers: str, topic: str, messages: Iterable[tuple[str, str]],
            on_acknowledged: Callable[[str], None], delivery_timeout_s: float) -> list[str]:
    producer = Producer({
        "bootstrap.servers": bootstrap_servers,
        # The leader answers only once every in-sync replica has the write, and refuses it
        # (NOT_ENOUGH_REPLICAS) when fewer than min.insync.replicas are in sync: an acknowledged write
        # survives the loss of any broker that min.insync.replicas allows.
        "acks": "all",
        # A leader failure means retries; idempotence keeps those retries from writing a message twice
        # or out of order.
        "enable.idempotence": True,
        # The one bound on how long a message may wait (queue, retries, in flight) before its delivery
        # report says it failed. Retries themselves are unlimited within it.
        "message.timeout.ms": int(delivery_timeout_s * 1000),
    })
    failed: list[str] = []

    def on_delivery(err, msg):
        value = msg.value().decode()
        # The delivery report is the cluster's answer; nothing else is. err is final here: retriable
        # errors were retried until the timeout.
        if err is None:
            on_acknowledged(value)
        else:
            failed.append(value)

    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)  # serve delivery reports as we go

    # Every message gets exactly one report by message.timeout.ms; the margin covers the last one.
    remaining = producer.flush(delivery_timeout_s + 5)
    if remaining:  # should not happen: message.timeout.ms expires them first
        failed.append(f"<{remaining} messages without a delivery report>")
    return failed
