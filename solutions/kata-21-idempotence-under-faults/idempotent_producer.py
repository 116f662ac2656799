"""kata-21 reference solution: an idempotent producer, so retries can never write an event twice."""

from collections.abc import Iterable

from confluent_kafka import KafkaException, Producer


def producer_config(bootstrap_servers: str) -> dict:
    return {
        "bootstrap.servers": bootstrap_servers,
        # The broker gives the producer an id and checks a sequence number on every batch per partition:
        # a batch it already wrote (only the answer was lost) is acknowledged again, not appended again,
        # and a batch out of sequence is refused, so order survives retries with up to 5 requests in flight.
        # librdkafka then also enforces acks=all, unlimited retries and max.in.flight <= 5.
        "enable.idempotence": True,
        # Spell out the durability the idempotence relies on (librdkafka would refuse acks=0/1 here).
        "acks": "all",
    }


def publish_events(bootstrap_servers: str, topic: str, events: Iterable[tuple[str, str]]) -> None:
    producer = Producer(producer_config(bootstrap_servers))
    failures = []

    def on_delivery(err, msg):
        # Retriable errors (timeouts, lost connections) never get here: the client retries them until
        # message.timeout.ms. What arrives here is final, so keep it to raise.
        if err is not None:
            failures.append(err)

    for key, value in events:
        # The key keeps each account's events on one partition: the only place Kafka keeps order.
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)  # serve delivery callbacks as we go; never blocks

    remaining = producer.flush(60)
    if remaining or failures:
        raise KafkaException(f"{remaining} events undelivered, {len(failures)} failed: {failures[:3]}")
