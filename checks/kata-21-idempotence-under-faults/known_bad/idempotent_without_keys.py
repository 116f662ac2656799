"""Known-bad for kata-21: idempotence on, but events sent without their key: idempotence keeps order
within a partition, and keyless events of one account are spread over every partition."""

from collections.abc import Iterable

from confluent_kafka import KafkaException, Producer


def publish_events(bootstrap_servers: str, topic: str, events: Iterable[tuple[str, str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    for _key, value in events:
        producer.produce(topic, value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise KafkaException(f"{remaining} events undelivered, {len(failures)} failed: {failures[:3]}")
