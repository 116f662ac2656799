"""kata-06: share a topic's partitions between the members of a consumer group.

Implement run_member(): one member of a consumer group. The checks start several copies of it,
as separate processes, with the same group id. Read README.md first.
"""

from collections.abc import Callable

from confluent_kafka import Consumer, Message


def run_member(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
               should_stop: Callable[[], bool], config: dict | None = None) -> None:
    """Be one member of the consumer group `group_id` reading `topic`, until asked to stop.

    bootstrap_servers: where the broker is, e.g. "127.0.0.1:9092".
    topic: the topic the group reads (it already exists).
    group_id: the id every member of the group uses.
    process: call process(msg) once for every message this member receives.
    should_stop: check it at least once a second; when it returns True, leave the group cleanly (close the
        consumer) and return.
    config: extra consumer settings; apply them on top of your own.
    Raises: the consumer's fatal error (an event whose error code is KafkaError._FATAL), if it reports one.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        # TODO: which settings make this consumer a member of the group `group_id`, and make it
        #       start from the beginning of a partition the group has never read?
        **(config or {}),
    })
    # TODO: get a share of `topic`'s partitions from the group (do not choose partitions yourself).
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            # TODO: hand every real message (not None, not an error) to process(msg).
            del msg
    finally:
        consumer.close()
