"""kata-15 reference solution: kafka-consumer-groups --reset-offsets, in code."""

from datetime import datetime, timedelta, timezone

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_millis(when: datetime) -> int:
    if when.tzinfo is None:
        # A naive datetime means "some local time": refuse to guess which.
        raise ValueError("the datetime needs a timezone (e.g. datetime(..., tzinfo=timezone.utc))")
    # Kafka timestamps are milliseconds since the epoch. Integer timedelta arithmetic avoids
    # the float rounding of when.timestamp() * 1000.
    return (when - EPOCH) // timedelta(milliseconds=1)


def _spec(to) -> OffsetSpec:
    """What to look up in each partition."""
    if to == "earliest":
        # The log start offset: 0 only until retention (or delete_records) removes records.
        spec = OffsetSpec.earliest()
    elif to == "latest":
        spec = OffsetSpec.latest()  # the end offset: where the next record will go
    elif isinstance(to, datetime):
        spec = OffsetSpec.for_timestamp(to_millis(to))
    else:
        raise ValueError(f"to must be 'earliest', 'latest' or a timezone-aware datetime, not {to!r}")
    return spec


def reset_offsets(bootstrap_servers: str, group_id: str, topic: str, to) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise KafkaException(metadata.error if metadata else f"no topic {topic}")
    # A group has one committed offset per partition: reset every one of them.
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]

    def lookup(spec: OffsetSpec) -> dict[int, int]:
        futures = admin.list_offsets({tp: spec for tp in partitions})
        return {tp.partition: future.result().offset for tp, future in futures.items()}

    found, ends = lookup(_spec(to)), lookup(OffsetSpec.latest())
    # -1: the partition has no record at or after the timestamp. The replay of such a partition
    # starts with the next record written: its end offset. (-1 is no offset a commit can store.)
    found = {p: (offset if offset >= 0 else ends[p]) for p, offset in found.items()}

    # Like the CLI, this must not move offsets under running consumers (their next commit would
    # overwrite ours anyway). The broker itself refuses a commit from outside an active group,
    # partition by partition (UNKNOWN_MEMBER_ID), and the call still "succeeds": look at each one.
    request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic, p, o) for p, o in found.items()])
    result = admin.alter_consumer_group_offsets([request])[group_id].result()
    refused = {tp.partition: tp.error for tp in result.topic_partitions if tp.error is not None}
    if refused:
        raise KafkaException(f"the broker refused the new offsets of group {group_id}: {refused} (is a consumer "
                             "of the group still running?)")
    return found
