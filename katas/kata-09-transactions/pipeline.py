"""kata-09: exactly-once consume-transform-produce with Kafka transactions.

Implement run_pipeline() so that every input record's output appears exactly once for
read_committed readers of the output topic, whatever happens: a crash mid-batch, a batch
that fails, or a newer instance taking over. Read README.md first.
"""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, Producer


def transform(value: bytes) -> bytes:
    """The pipeline's business logic: the output value is the input value upper-cased."""
    return value.upper()


def run_pipeline(bootstrap_servers: str, input_topic: str, output_topic: str, group_id: str,
                 transactional_id: str, process: Callable[[Message], None], should_stop: Callable[[], bool],
                 batch_size: int = 10, consumer_config: dict | None = None) -> None:
    """Copy every record of `input_topic` to `output_topic` (same key, transformed value), exactly once.

    bootstrap_servers: where the broker is, e.g. "127.0.0.1:9092".
    input_topic, output_topic: both exist already.
    group_id: the consumer group; it remembers how far the pipeline got.
    transactional_id: this pipeline instance's identity for transactions; a restarted
        instance gets the same one.
    process: call process(msg) with each input message, right after producing its output
        and before its transaction commits. It may raise.
    should_stop: check it between batches; once it returns True, return.
    batch_size: at most this many input records per transaction.
    consumer_config: extra consumer settings from the caller; apply them on top of yours.

    Raises what process() raised (after aborting the batch), or the KafkaException of a
    fatal error such as being fenced by a newer instance.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # TODO: who commits the input offsets, and which records may this consumer see?
        **(consumer_config or {}),
    })
    # TODO: a producer that can take part in transactions (and keep abandoned ones short).
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    try:
        # TODO: something must happen once, before consuming anything.
        consumer.subscribe([input_topic])
        while not should_stop():
            batch = consumer.consume(num_messages=batch_size, timeout=0.5)
            if not batch:
                continue
            # TODO: the whole batch (output AND input offsets) must succeed or fail as one.
            for msg in batch:
                if msg.error():
                    raise KafkaException(msg.error())
                producer.produce(output_topic, key=msg.key(), value=transform(msg.value()))
                process(msg)
            # TODO: record how far the pipeline got, atomically with the output.
            # TODO: when something in the batch raises, undo it and re-raise (fatal errors: just re-raise).
    finally:
        consumer.close()
