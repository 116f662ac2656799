"""kata-08 reference solution: commit in batches, commit what was processed when partitions are
revoked, and let go without committing when they are lost."""

import contextlib
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition


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

    def commit() -> None:
        """Commit, synchronously, everything we processed and have not committed yet."""
        nonlocal processed_since_commit
        if pending:
            # Nothing new (a quiet partition, a member that just joined): no commit at all. A bare
            # consumer.commit() would raise _NO_OFFSET here and crash the rebalance.
            # A failed commit means the group moved on without us (UNKNOWN_MEMBER_ID,
            # ILLEGAL_GENERATION, a rebalance under way). Not a reason to stop: the next owner
            # processes those messages again, which is what at-least-once allows.
            with contextlib.suppress(KafkaException):
                # Synchronous: when this returns the broker has the offsets, so the partition's next
                # owner (which asks for them right after this rebalance) starts exactly after us.
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in pending.items()],
                                asynchronous=False)
            processed_since_commit = 0  # the next batch counts from this commit
        pending.clear()

    def on_revoke(_consumer, partitions) -> None:
        # Called inside poll() (or close()) before the partitions are handed to someone else,
        # and every message returned so far has been processed: the last safe moment to commit.
        # (Committing the progress of partitions we keep, with the cooperative protocol, is harmless.)
        commit()

    def on_lost(_consumer, partitions) -> None:
        # The group already gave these partitions away (our session timed out, or we were too
        # slow to poll). Committing now would fail, or overwrite the new owner's progress.
        # Forget them: their uncommitted messages will be processed again by the new owner.
        pending.clear()

    # No on_assign: a partition we are given starts at the group's committed offset, and nothing
    # we remember is stale by then (revoke and lost both cleared it).
    consumer.subscribe([topic], on_revoke=on_revoke, on_lost=on_lost)
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                # Nothing, or an error event: those are informational (librdkafka reconnects and
                # retries by itself). Either way, back to should_stop().
                continue
            process(msg)
            processed_since_commit += 1
            pending[(msg.topic(), msg.partition())] = msg.offset() + 1
            if processed_since_commit >= commit_every:
                # Batching commits: one broker round trip per batch, not per message. The price is
                # that a crash repeats at most one batch; a rebalance repeats nothing (on_revoke).
                commit()
    finally:
        # close() revokes our partitions, so on_revoke commits the last messages we processed,
        # and leaves the group at once so the others do not wait for our session to time out.
        consumer.close()
