"""kata-19 reference solution: acks=all, acknowledgements only from delivery reports, failures returned
to the caller."""

from collections.abc import Callable, Iterable

from confluent_kafka import Producer


def publish(bootstrap_servers: str, topic: str, messages: Iterable[tuple[str, str]],
            on_acknowledged: Callable[[str], None], delivery_timeout_s: float) -> list[str]:
    producer = Producer({
        "bootstrap.servers": bootstrap_servers,
        # The leader answers only once every in-sync replica has the write, and refuses it
        # (NOT_ENOUGH_REPLICAS) when fewer than min.insync.replicas are in sync: an acknowledged write
        # survives the loss of any broker that min.insync.replicas allows. (It is librdkafka's default:
        # spelled out, because it is the whole point.)
        "acks": "all",
        # The one bound on how long a message may wait (queue, retries, in flight) before its delivery
        # report says it failed. Retries (on by default) are unlimited within it, so a leader change is
        # ridden out. A retry may write a message twice (at-least-once); kata-21's enable.idempotence
        # removes those duplicates.
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
        producer.poll(0)  # serve delivery reports as we go: the caller hears of each acknowledgement soon

    # Every message gets exactly one report within message.timeout.ms (the client scans for expired
    # messages about once a second), so flush() returns then, with every report served.
    producer.flush()
    return failed
