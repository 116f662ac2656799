"""Known-bad for kata-19: acks=all, but retries turned off "so nothing is written twice": a request in
flight when the leader dies fails for good, although a new leader takes over seconds later."""

from collections.abc import Callable, Iterable

from confluent_kafka import Producer


def publish(bootstrap_servers: str, topic: str, messages: Iterable[tuple[str, str]],
            on_acknowledged: Callable[[str], None], delivery_timeout_s: float) -> list[str]:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "retries": 0,
                         "message.timeout.ms": int(delivery_timeout_s * 1000)})
    failed: list[str] = []

    def on_delivery(err, msg):
        if err is None:
            on_acknowledged(msg.value().decode())
        else:
            failed.append(msg.value().decode())

    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(delivery_timeout_s + 5)
    return failed
