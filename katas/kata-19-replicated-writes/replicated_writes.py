"""kata-19: lose no acknowledged write when brokers fail.

Implement publish() so that what you report as acknowledged survives the loss of a broker, and
what the cluster could not take comes back to the caller. Read README.md first.
"""

from collections.abc import Callable, Iterable

from confluent_kafka import Producer


def publish(bootstrap_servers: str, topic: str, messages: Iterable[tuple[str, str]],
            on_acknowledged: Callable[[str], None], delivery_timeout_s: float) -> list[str]:
    """Publish every (key, value) message to `topic` and report what became of each one.

    bootstrap_servers: where the cluster is, e.g. "127.0.0.1:9092,127.0.0.1:9093".
    topic: the topic to write to (it exists: replication factor 3, min.insync.replicas=2).
    messages: a live stream of (key, value) strings; produce each one as soon as you receive it.
    on_acknowledged: call on_acknowledged(value) once for each message the cluster acknowledged.
    delivery_timeout_s: give up on a message that is still not acknowledged after this long.

    Returns the values of the messages that were not delivered ([] when all were).
    """
    producer = Producer({
        "bootstrap.servers": bootstrap_servers,
        # TODO: how many replicas must have a write before the leader acknowledges it?
        # TODO: how long may a message wait for its acknowledgement (delivery_timeout_s)?
    })
    failed: list[str] = []

    def on_delivery(err, msg):
        # TODO: the cluster's answer for one message arrives here.
        pass

    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        on_acknowledged(value)  # TODO: is the message acknowledged at this point?
        producer.poll(0)

    producer.flush(delivery_timeout_s + 5)
    return failed
