"""Known-bad for kata-19: treats every delivery report as an acknowledgement, without looking at its
error."""

from collections.abc import Callable, Iterable

from confluent_kafka import Producer


def publish(bootstrap_servers: str, topic: str, messages: Iterable[tuple[str, str]],
            on_acknowledged: Callable[[str], None], delivery_timeout_s: float) -> list[str]:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": int(delivery_timeout_s * 1000)})

    def on_delivery(err, msg):
        on_acknowledged(msg.value().decode())

    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(delivery_timeout_s + 5)
    return []
