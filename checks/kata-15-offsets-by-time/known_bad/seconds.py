"""Known-bad for kata-15: hands Kafka a timestamp in seconds."""

from datetime import datetime

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec


def reset_offsets(bootstrap_servers: str, group_id: str, topic: str, to) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(topic, timeout=10).topics[topic]
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    if to == "earliest":
        spec = OffsetSpec.earliest()
    elif to == "latest":
        spec = OffsetSpec.latest()
    elif isinstance(to, datetime):
        spec = OffsetSpec.for_timestamp(int(to.timestamp()))  # seconds, not milliseconds
    else:
        raise ValueError(to)
    found = {tp.partition: f.result().offset for tp, f in admin.list_offsets({tp: spec for tp in partitions}).items()}
    ends = {tp.partition: f.result().offset
            for tp, f in admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}).items()}
    found = {p: (o if o >= 0 else ends[p]) for p, o in found.items()}
    request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic, p, o) for p, o in found.items()])
    result = admin.alter_consumer_group_offsets([request])[group_id].result()
    for tp in result.topic_partitions:
        if tp.error is not None:
            raise KafkaException(tp.error)
    return found
