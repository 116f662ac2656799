"""kata-15: reset a consumer group to a point in time, to the earliest or to the latest offset.

Implement reset_offsets(): what `kafka-consumer-groups --reset-offsets --to-datetime ...
--execute` does, in code. Read README.md first.
"""

from datetime import datetime

# You will need some of these:
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition  # noqa: F401
from confluent_kafka.admin import AdminClient, OffsetSpec  # noqa: F401


def reset_offsets(bootstrap_servers: str, group_id: str, topic: str, to: str | datetime) -> dict[int, int]:
    """Commit new offsets for `group_id` on every partition of `topic` and return them.

    to: "earliest" (each partition's first offset still in the log), "latest" (each
        partition's end offset), or a timezone-aware datetime (per partition, the first
        offset whose record timestamp is at or after it; the end offset if there is none).

    Returns {partition: committed offset}. Raises if the group has running consumers or `to`
    is a naive datetime (and changes nothing), or if the broker refuses the new offsets.
    """
    # TODO: which partitions does the topic have?
    # TODO: find the offset for `to` on each of them. Kafka record timestamps count ...
    #       since the epoch? What does the lookup answer when no record is that late?
    # TODO: refuse an active group, commit the offsets for the group, and check that the
    #       broker accepted each partition.
    raise NotImplementedError("reset_offsets")
