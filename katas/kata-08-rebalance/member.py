"""kata-08: survive rebalances without losing or repeating messages.

Implement run_member(): one member of a consumer group that commits in batches, commits what it
processed when partitions are taken away, and copes with partitions it has lost. The checks run
several copies of it and make members join, leave, die and freeze mid-stream. Read README.md first.
"""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message


def run_member(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
               should_stop: Callable[[], bool], commit_every: int = 100, config: dict | None = None) -> None:
    """Be one member of the consumer group `group_id` reading `topic`, until asked to stop.

    process: call process(msg) once for every message received, in order.
    should_stop: when it returns True, close the consumer and return.
    commit_every: commit (synchronously) once this many messages were processed since your last commit.
    config: extra consumer settings (session and heartbeat timings); apply them on top of your own.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # This kata commits by hand: nothing is committed unless your code commits it.
        "enable.auto.commit": False,
        **(config or {}),
    })

    # TODO: remember, per partition, how far you have processed.

    def on_assign(_consumer, partitions):
        pass  # TODO: partitions given to this member (the group decided).

    def on_revoke(_consumer, partitions):
        pass  # TODO: partitions about to be handed to another member. Last chance to ...?

    def on_lost(_consumer, partitions):
        pass  # TODO: partitions the group already gave away (this member was thrown out).

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
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
            # TODO: commit once `commit_every` messages were processed since the last commit.
    finally:
        consumer.close()
