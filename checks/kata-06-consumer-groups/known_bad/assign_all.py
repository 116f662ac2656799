"""Known-bad for kata-06: assign() to every partition instead of subscribe(); no member ever joins the group."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition


def run_member(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
               should_stop: Callable[[], bool], config: dict | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        **(config or {}),
    })
    # Picks the partitions itself: the group id is only used for commits, never for membership.
    count = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p) for p in range(count)])
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                continue
            process(msg)
    finally:
        consumer.close()
