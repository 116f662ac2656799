"""Known-bad for kata-15: commits whatever offsets_for_times answers, -1 included."""

from datetime import datetime

from confluent_kafka import Consumer, TopicPartition


def reset_offsets(bootstrap_servers: str, group_id: str, topic: str, to) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        if isinstance(to, datetime):
            ms = int(to.timestamp() * 1000)
            offsets = consumer.offsets_for_times([TopicPartition(topic, p, ms) for p in partitions], timeout=10)
            found = {tp.partition: tp.offset for tp in offsets}  # -1 when no record is that late
        elif to in ("earliest", "latest"):
            found = {}
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                found[p] = low if to == "earliest" else high
        else:
            raise ValueError(to)
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in found.items()], asynchronous=False)
        return found
    finally:
        consumer.close()
