"""Known-bad for kata-17: many requests in flight with retries, idempotence off."""

from confluent_kafka import KafkaException, Producer


def producer_config() -> dict:
    return {
        "linger.ms": 20,
        "batch.size": 256 * 1024,
        "compression.type": "lz4",
        "acks": "all",
        # More in flight is faster, but a retried batch may now land after a later one (or twice).
        "max.in.flight.requests.per.connection": 20,
        "retries": 10,
        "enable.idempotence": False,
    }


def publish(producer: Producer, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    failures = []

    def on_delivery(err, msg):
        # Served from poll()/flush(): the only place a failed delivery becomes visible.
        if err is not None:
            failures.append(err)

    for key, value in events:
        while True:
            try:
                # The key keeps one user's events on one partition, in order: never drop it for speed.
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                # The local queue is full: let the background thread drain it, then try again.
                producer.poll(0.1)
        # Serve delivery callbacks without waiting. A flush() here would close every open batch and
        # wait for the broker's answer once per record: the slowest producer there is.
        producer.poll(0)

    # One wait at the end: every queued batch goes out now (linger is cut short) and we learn what failed.
    remaining = producer.flush(60)
    if remaining or failures:
        raise KafkaException(f"{remaining} events undelivered, {len(failures)} failed: {failures[:3]}")
