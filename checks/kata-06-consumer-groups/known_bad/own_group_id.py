"""Known-bad for kata-06: each member makes up its own group id, so every member reads every partition."""

import os
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message


def run_member(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
               should_stop: Callable[[], bool], config: dict | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        # "unique per member, so they don't get in each other's way" -- each one is a group of one
        "group.id": f"{group_id}-{os.getpid()}",
        "auto.offset.reset": "earliest",
        **(config or {}),
    })
    consumer.subscribe([topic])
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
