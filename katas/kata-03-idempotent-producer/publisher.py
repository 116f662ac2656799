"""kata-03: a producer that never duplicates, never reorders, and never loses a failure.

Implement ReliablePublisher so that every record either reaches Kafka exactly once, in order per
key, or is reported back to the caller by close(). Read README.md first.
"""

from confluent_kafka import Producer


class ReliablePublisher:
    def __init__(self, bootstrap_servers: str, config: dict | None = None) -> None:
        """Create the one producer this publisher uses for its whole life.

        bootstrap_servers: where the broker is, e.g. "127.0.0.1:9092".
        config: extra librdkafka settings from the caller (e.g. {"message.timeout.ms": 3000});
            apply them on top of your own settings.
        """
        # TODO: which settings make the broker recognise a resent batch, and acknowledge a record only
        #       once it is safely stored? And where do the caller's settings go?
        self._producer = Producer({"bootstrap.servers": bootstrap_servers})

    def publish(self, topic: str, key: str, value: str | bytes) -> None:
        """Queue one record (key as UTF-8, a str value as UTF-8, bytes unchanged) and return at once.

        Never waits for its delivery; if the local queue is full, frees room and tries again.
        """
        data = value.encode("utf-8") if isinstance(value, str) else value
        # TODO: how will you ever learn whether this record was delivered?
        self._producer.produce(topic, key=key.encode("utf-8"), value=data)

    def close(self, timeout: float = 30.0) -> list[tuple[str, str, str]]:
        """Wait up to `timeout` seconds for outstanding records; return the ones not delivered.

        Returns one (topic, key, reason) tuple per record that did not reach the broker, including
        records still without a delivery report when the time is up; [] when all were delivered.
        """
        # TODO: what happens to records still in the producer's queue when the producer goes away?
        # TODO: collect the failures, and report the records that are still undelivered at the deadline.
        return []
