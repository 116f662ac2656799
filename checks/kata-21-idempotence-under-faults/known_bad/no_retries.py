"""Known-bad for kata-21: "retries cause duplicates, so turn them off": a lost response then fails
the event instead of being resent, and the caller is told the events were not delivered."""

from collections.abc import Iterable

from confluent_kafka import KafkaException, Producer


def publish_events(bootstrap_servers: str, topic: str, events: Iterable[tuple[str, str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": False,
                         "retries": 0})
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    for key, value in events:
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise KafkaException(f"{remaining} events undelivered, {len(failures)} failed: {failures[:3]}")
