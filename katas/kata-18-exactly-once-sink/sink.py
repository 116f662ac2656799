"""kata-18: an exactly-once sink — rows and consumed offsets stored in one database transaction.

Implement run_sink(): consume payments from Kafka into a sqlite database so that a crash at any
moment, followed by a restart, leaves every payment in the database exactly once. Read README.md first.
"""

import json
import sqlite3
from collections.abc import Callable

from confluent_kafka import Consumer, Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT    NOT NULL,
    account    TEXT    NOT NULL,
    amount     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kafka_offsets (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


def run_sink(bootstrap_servers: str, topic: str, group_id: str, db_path: str, process: Callable[[Message], None],
             should_stop: Callable[[], bool], config: dict | None = None) -> None:
    """Write one row per payment consumed from `topic` into the sqlite database at `db_path`.

    bootstrap_servers: where the broker is, e.g. "127.0.0.1:9092".
    topic: the topic of payments (it already exists); each value is JSON with payment_id, account, amount.
    group_id: the consumer group to subscribe with.
    db_path: the sqlite database file; it may not exist yet, or hold rows and offsets from an earlier run.
    process: call process(msg) for each record after inserting its row, before committing it.
    should_stop: when it returns True, close everything and return.
    config: extra consumer settings; apply them on top of your own.
    """
    conn = sqlite3.connect(db_path)
    conn.executescript(SCHEMA)
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # TODO: where does this sink's progress live? Kafka commits offsets for you unless told not to.
        **(config or {}),
    })

    def on_assign(consumer, partitions):
        # TODO: start each partition where the database says this sink stopped.
        consumer.assign(partitions)

    consumer.subscribe([topic], on_assign=on_assign)
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            payment = json.loads(msg.value())
            conn.execute("INSERT INTO payments (payment_id, account, amount) VALUES (?, ?, ?)",
                         (payment["payment_id"], payment["account"], payment["amount"]))
            process(msg)
            # TODO: remember where this partition resumes, in the same transaction as the row.
            conn.commit()
    finally:
        consumer.close()
        conn.close()
