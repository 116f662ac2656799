"""Known-bad for kata-19: acks=all and idempotence, but failed deliveries are only logged: the caller is
told nothing about messages the cluster refused."""

import logging
from collections.abc import Callable, Iterable

from confluent_kafka import Producer

log = logging.getLogger(__name__)


def publish(bootstrap_servers: str, topic: str, messages: Iterable[tuple[str, str]],
            on_acknowledged: Callable[[str], None], delivery_timeout_s: float) -> list[str]:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": int(delivery_timeout_s * 1000)})

    def on_delivery(err, msg):
        if err is None:
            on_acknowledged(msg.value().decode())
        else:
            log.warning("delivery failed: %s", err)

    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(delivery_timeout_s + 5)
    return []
