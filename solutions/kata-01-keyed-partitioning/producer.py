"""kata-01 reference solution: key by customer id, flush, and surface failed deliveries."""

import json

from confluent_kafka import KafkaException, Producer


def publish_orders(bootstrap_servers: str, topic: str, orders: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    failures = []

    def on_delivery(err, msg):
        # Called from flush()/poll(): the only place a failed delivery becomes visible.
        if err is not None:
            failures.append(err)

    for order in orders:
        producer.produce(
            topic,
            # Same key -> same partition (librdkafka hashes the key: CRC32 by default,
            # murmur2 with partitioner=murmur2_random like the Java client), and Kafka keeps
            # records in order within a partition: a customer's orders stay in order.
            key=str(order["customer_id"]).encode("utf-8"),
            value=json.dumps(order).encode("utf-8"),
            on_delivery=on_delivery,
        )
        # Serve delivery callbacks as we go so the local queue never fills up.
        producer.poll(0)

    # produce() is asynchronous; flush() waits until every queued record is acknowledged
    # and returns how many are still undelivered.
    remaining = producer.flush(30)
    # A refused record leaves the queue with an error (flush() no longer counts it); one still
    # queued after the timeout is counted by flush() and never reached its callback. Either way
    # the orders did not all arrive: say so.
    if remaining or failures:
        raise KafkaException(f"{remaining} orders undelivered, {len(failures)} failed: {failures}")
