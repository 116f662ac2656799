"""Known-bad for kata-03: counts what flush() left, but never reads a delivery report."""

from confluent_kafka import Producer


class ReliablePublisher:
    def __init__(self, bootstrap_servers: str, config: dict | None = None) -> None:
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

    def publish(self, topic: str, key: str, value: str | bytes) -> None:
        data = value.encode("utf-8") if isinstance(value, str) else value
        while True:
            try:
                self._producer.produce(topic, key=key.encode("utf-8"), value=data)
                break
            except BufferError:
                # The local queue is full: serve delivery reports (which frees room) and try again.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def close(self, timeout: float = 30.0) -> list[tuple[str, str, str]]:
        # produce() only queued the records; flush() sends what is left and waits for every report.
        remaining = self._producer.flush(timeout)
        if remaining:
            # "flush() says what is left, so that is the failure count" -- but a record that failed
            # (refused, timed out) HAS had its report: it is not counted here.
            self._producer.purge()
            return [("?", "?", f"{remaining} records undelivered")]
        # (no delivery callback: a report with an error is served by flush() and thrown away)
        return []
