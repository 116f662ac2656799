"""Known-bad for kata-19: counts a message as acknowledged once produce() accepted it, but produce()
only puts it in the client's local queue."""

from collections.abc import Callable, Iterable

from confluent_kafka import Producer


def publish(bootstrap_servers: str, topic: str, messages: Iterable[tuple[str, str]],
            on_acknowledged: Callable[[str], None], delivery_timeout_s: float) -> list[str]:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": int(delivery_timeout_s * 1000)})
    failed: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(msg.value().decode())

    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        on_acknowledged(value)
        producer.poll(0)
    producer.flush(delivery_timeout_s + 5)
    return failed
