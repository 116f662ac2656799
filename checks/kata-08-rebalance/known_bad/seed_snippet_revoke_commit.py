"""Known-bad for kata-08: the seed course's snippet, commit() with no offsets in on_revoke.

consumer.commit() without offsets commits the current positions; when nothing was consumed
since the last commit (a quiet partition, a member that just joined) it raises _NO_OFFSET,
and the exception escapes from poll() or close().
"""

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message


def run_member(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
               should_stop: Callable[[], bool], commit_every: int = 100, config: dict | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **(config or {}),
    })
    processed_since_commit = 0

    def on_revoke(cons, partitions):
        nonlocal processed_since_commit
        cons.commit(asynchronous=False)
        processed_since_commit = 0

    consumer.subscribe([topic], on_revoke=on_revoke)
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
            processed_since_commit += 1
            if processed_since_commit >= commit_every:
                consumer.commit(asynchronous=False)
                processed_since_commit = 0
    finally:
        consumer.close()
