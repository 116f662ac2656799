"""Known-bad for kata-09: the seed course's transactional example.

The output goes through transactions, but the input offsets are never sent to the
transaction (nor committed at all): the comment says the commit "includes the consumer
offsets", and it does not. After a crash the restarted instance starts over from the
group's last committed offsets (none) and redoes work whose output is already committed.
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
                         "enable.idempotence": True, "acks": "all", "transaction.timeout.ms": 10000})
    try:
        producer.init_transactions()
        consumer.subscribe([input_topic])
        while not should_stop():
            batch = consumer.consume(num_messages=batch_size, timeout=0.5)
            if not batch:
                continue
            producer.begin_transaction()
            try:
                for msg in batch:
                    if msg.error():
                        raise KafkaException(msg.error())
                    producer.produce(output_topic, key=msg.key(), value=msg.value().upper())
                    process(msg)
                # "The commit includes the consumer offsets" -- it does not: none were sent.
                producer.commit_transaction()
            except Exception as exc:
                if not (isinstance(exc, KafkaException) and exc.args[0].fatal()):
                    producer.abort_transaction()
                raise
    finally:
        consumer.close()
