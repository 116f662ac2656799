"""Known-bad for kata-09: commits the input offsets with consumer.commit(), outside the transaction.

The batch is marked consumed as soon as it is read, then the output is written in a
transaction. A crash before that transaction commits loses the whole batch: its output is
aborted, but the group's offsets already point past it.
"""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, Producer


def run_pipeline(bootstrap_servers: str, input_topic: str, output_topic: str, group_id: str,
                 transactional_id: str, process: Callable[[Message], None], should_stop: Callable[[], bool],
                 batch_size: int = 10, consumer_config: dict | None = None) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", **(consumer_config or {})})
    producer = Producer({"bootstrap.servers": bootstrap_servers, "transactional.id": transactional_id,
                         "transaction.timeout.ms": 10000})
    try:
        producer.init_transactions()
        consumer.subscribe([input_topic])
        while not should_stop():
            batch = consumer.consume(num_messages=batch_size, timeout=0.5)
            if not batch:
                continue
            consumer.commit(asynchronous=False)  # "we have the batch: mark it read"
            producer.begin_transaction()
            try:
                for msg in batch:
                    if msg.error():
                        raise KafkaException(msg.error())
                    producer.produce(output_topic, key=msg.key(), value=msg.value().upper())
                    process(msg)
                producer.commit_transaction()
            except Exception as exc:
                if not (isinstance(exc, KafkaException) and exc.args[0].fatal()):
                    producer.abort_transaction()
                raise
    finally:
        consumer.close()
