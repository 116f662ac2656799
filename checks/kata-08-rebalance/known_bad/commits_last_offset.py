"""Known-bad for kata-08: commits the offset of the last processed message instead of the next one to read."""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

# Commit failures that mean "the group has moved on without us" (we were thrown out, or a
# rebalance is under way). They are not fatal: the records since our last commit will be
# processed again by the next owner, which is what at-least-once allows.
GROUP_MOVED_ON = {
    KafkaError._ASSIGNMENT_LOST,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID,
}


def run_member(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
               should_stop: Callable[[], bool], commit_every: int = 100, config: dict | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # We decide what is committed and when. Auto-commit would commit, in the background,
        # whatever poll() returned, whether or not it was processed.
        "enable.auto.commit": False,
        **(config or {}),
    })

    # Per partition: the offset of the next message to read, i.e. last processed + 1. This is
    # what a commit must carry; Kafka's committed offset means "start here".
    pending: dict[tuple[str, int], int] = {}
    processed_since_commit = 0

    def commit(partitions=None) -> None:
        """Commit, synchronously, what we processed (of `partitions`, or of everything we own)."""
        nonlocal processed_since_commit
        keys = [k for k in pending if partitions is None or k in partitions]
        if not keys:
            # Nothing new: committing "the current position" here would raise _NO_OFFSET.
            return
        offsets = [TopicPartition(t, p, pending[(t, p)]) for t, p in keys]
        try:
            # Synchronous: when this returns the broker has the offsets, so the partition's next
            # owner (which asks for them right after this rebalance) starts exactly after us.
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() not in GROUP_MOVED_ON:
                raise
        for k in keys:
            del pending[k]
        if not pending:
            processed_since_commit = 0

    def on_assign(_consumer, partitions) -> None:
        # Newly assigned partitions start at the group's committed offset: whatever we once
        # remembered about them is stale.
        for tp in partitions:
            pending.pop((tp.topic, tp.partition), None)

    def on_revoke(_consumer, partitions) -> None:
        # Called inside poll() (or close()) before the partitions are handed to someone else,
        # and every message returned so far has been processed: the last safe moment to commit.
        commit({(tp.topic, tp.partition) for tp in partitions})

    def on_lost(_consumer, partitions) -> None:
        # The group already gave these partitions away (our session timed out, or we were too
        # slow to poll). Committing now would fail, or overwrite the new owner's progress.
        # Forget them: their uncommitted messages will be processed again by the new owner.
        for tp in partitions:
            pending.pop((tp.topic, tp.partition), None)

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
            # the offset of the message just processed (the committed offset is read as 'start here')
            pending[(msg.topic(), msg.partition())] = msg.offset()
            processed_since_commit += 1
            if processed_since_commit >= commit_every:
                # Batching commits: one broker round trip per batch, not per message. The price is
                # that a crash repeats at most one batch; a rebalance repeats nothing (on_revoke).
                commit()
    finally:
        # close() revokes our partitions, so on_revoke commits the last messages we processed,
        # and leaves the group at once so the others do not wait for our session to time out.
        consumer.close()
