"""kata-17: tune a producer for throughput without giving up durability or per-key order.

Implement producer_config() and publish(). The checks build the producer from your settings and
race it against the naive configuration below on the same broker. Read README.md first.
"""

from confluent_kafka import Producer


def producer_config() -> dict:
    """librdkafka producer settings for a fast, durable, ordered producer.

    Do not include bootstrap.servers: the caller adds it.
    Keep acks=all and enable.idempotence=True.
    """
    # This is the naive starting point the checks race against: every record is sent at once,
    # in tiny batches, uncompressed, one request at a time.
    return {
        # TODO: how long may a record wait for others to join its batch?
        "linger.ms": 0,
        # TODO: how big may one partition's batch grow?
        "batch.size": 1024,
        # TODO: snappy, lz4 or zstd? Compression works on a whole batch.
        "compression.type": "none",
        "acks": "all",
        # TODO: one request in flight keeps order, slowly. What keeps order with more in flight?
        "max.in.flight.requests.per.connection": 1,
    }


def publish(producer: Producer, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    """Publish every (key, value) in `events` to `topic`, in list order, each with its key.

    producer: built by the caller from producer_config() (plus bootstrap.servers).
    topic: the topic to write to (it already exists).
    events: (key, value) pairs, both bytes, in the order to publish.

    Returns only when every event is delivered; raises if any could not be. The producer's local
    queue may be small: when produce() raises BufferError, wait for room and produce the event again.
    """
    for key, value in events:
        producer.produce(topic, key=key, value=value)
        # TODO: serve delivery reports as you go, without waiting for the broker on every record.
    # TODO: return only when every queued record has been delivered, and raise if any failed.
