"""Known-bad for kata-21: idempotence with acks=1 "for speed": an idempotent producer's guarantee rests
on every in-sync replica having the batch, and librdkafka refuses the combination outright."""

from collections.abc import Iterable

from confluent_kafka import KafkaException, Producer


def publish_events(bootstrap_servers: str, topic: str, events: Iterable[tuple[str, str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "acks": 1})
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
