"""kata-03 reference solution: an idempotent producer whose every failure reaches the caller."""

from confluent_kafka import Producer


class ReliablePublisher:
    def __init__(self, bootstrap_servers: str, config: dict | None = None) -> None:
        self._failures: list[tuple[str, str, str]] = []
        settings = {
            "bootstrap.servers": bootstrap_servers,
            # The broker gives this producer an id and numbers its batches per partition; a batch
            # resent after a lost acknowledgement is recognised and not written twice, and with up to
            # 5 requests in flight a retry can never overtake a later batch (order per key holds).
            "enable.idempotence": True,
            # Acknowledged only once every in-sync replica has the record. Idempotence requires it
            # (librdkafka refuses idempotence with acks=0 or 1); spelled out so nobody "tunes" it away.
            "acks": "all",
        }
        # The caller's settings (e.g. message.timeout.ms, the delivery deadline) go on top.
        settings.update(config or {})
        self._producer = Producer(settings)

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
