"""Known-bad for kata-03: acks=1 and idempotence off: no producer id, no sequence numbers."""

from confluent_kafka import Producer


class ReliablePublisher:
    def __init__(self, bootstrap_servers: str, config: dict | None = None) -> None:
        settings = {
            "bootstrap.servers": bootstrap_servers,
            # "The leader has it, good enough", and no producer id: a batch resent after a lost
            # acknowledgement is written again, and a retried batch can land after a later one.
            "enable.idempotence": False,
            "acks": "1",
        }
        # The caller's settings (e.g. message.timeout.ms, the delivery deadline) go on top.
        settings.update(config or {})
        self._producer = Producer(settings)
        self._failures: list[tuple[str, str, str]] = []

    def _on_delivery(self, err, msg) -> None:
        # The only place a failure becomes visible: the broker's refusal (message too large), a
        # missing topic after message.timeout.ms, a purge at close. Never drop it.
        if err is not None:
            key = msg.key().decode("utf-8") if msg.key() is not None else None
            self._failures.append((msg.topic(), key, str(err)))

    def publish(self, topic: str, key: str, value: str | bytes) -> None:
        data = value.encode("utf-8") if isinstance(value, str) else value
        while True:
            try:
                self._producer.produce(topic, key=key.encode("utf-8"), value=data, on_delivery=self._on_delivery)
                break
            except BufferError:
                # The local queue is full: serve delivery reports (which frees room) and try again.
                self._producer.poll(0.1)
        # Serve delivery reports as they come, without waiting for anything.
        self._producer.poll(0)

    def close(self, timeout: float = 30.0) -> list[tuple[str, str, str]]:
        # produce() only queued the records; flush() sends what is left and waits for every report.
        remaining = self._producer.flush(timeout)
        if remaining:
            # Out of time: these records have no report yet. Purging them makes librdkafka report each
            # one (as "purged"), so the caller learns exactly which records may not have arrived, and
            # none of them can still sneak out after close() said it failed.
            self._producer.purge()
            self._producer.flush(5)
        return list(self._failures)
