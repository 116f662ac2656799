"""kata-01: keep each customer's orders in order with keys.

Implement publish_orders() so that every order reaches Kafka, and all orders of one
customer land on the same partition in the order given. Read README.md first.
"""

import json

from confluent_kafka import Producer


def publish_orders(bootstrap_servers: str, topic: str, orders: list[dict]) -> None:
    """Publish each order to `topic` as JSON.

    bootstrap_servers: where the broker is, e.g. "127.0.0.1:9092".
    topic: the topic to write to (it already exists).
    orders: dicts with at least "order_id" and "customer_id", in the order to publish.

    Returns only when every order is delivered; raises if any was not.
    """
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for order in orders:
        value = json.dumps(order).encode("utf-8")
        # TODO: which key makes all orders of one customer land on one partition?
        producer.produce(topic, value=value)
    # TODO: produce() only queues the record. Make sure every queued record reached the
    #       broker before returning, and raise if some could not be delivered.
