"""kata-21: publish exactly once per event, even when the network loses the broker's answers.

Implement publish_events() so that every event is written once, in order per key, while the
connection to the brokers misbehaves. Read README.md first.
"""

from collections.abc import Iterable

from confluent_kafka import KafkaException, Producer


def producer_config(bootstrap_servers: str) -> dict:
    """The producer's settings (a suggestion: only publish_events() is checked)."""
    return {
        "bootstrap.servers": bootstrap_servers,
        # TODO: when an acknowledgement is lost, the client resends the batch. What makes that safe?
    }


def publish_events(bootstrap_servers: str, topic: str, events: Iterable[tuple[str, str]]) -> None:
    """Publish every (key, value) event to `topic`, exactly once and in order per key.

    bootstrap_servers: where the cluster is, e.g. "127.0.0.1:9092,127.0.0.1:9093".
    topic: the topic to write to (it already exists).
    events: a live stream of (key, value) strings: produce each one as soon as you receive it.

    Returns only when every event is delivered; raises if any could not be.
    """
    producer = Producer(producer_config(bootstrap_servers))
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    for key, value in events:
        # TODO: send the event with its key (UTF-8), and serve delivery callbacks as you go.
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)

    # TODO: wait for every delivery, and raise if some failed.
    producer.flush(60)
    if failures:
        raise KafkaException(f"{len(failures)} events failed: {failures[:3]}")
