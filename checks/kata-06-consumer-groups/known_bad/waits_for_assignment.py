"""Known-bad for kata-06: waits for an assignment before polling, but the assignment only arrives inside poll()."""

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message


def run_member(bootstrap_servers: str, topic: str, group_id: str, process: Callable[[Message], None],
               should_stop: Callable[[], bool], config: dict | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        **(config or {}),
    })
    consumer.subscribe([topic])
    try:
        while not should_stop():
            # "Extra members stay idle, so don't poll until the group gives us something."
            # The broker does assign partitions, but the assignment is applied in poll(): this
            # member holds its partitions forever and never reads them.
            if not consumer.assignment():
                time.sleep(0.2)
                continue
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
