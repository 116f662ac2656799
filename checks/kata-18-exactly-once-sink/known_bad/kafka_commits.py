"""Known-bad for kata-18: commits offsets to Kafka after the row, and resumes from Kafka's committed offsets."""

import json
import sqlite3
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message

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
    # Python's sqlite3 opens a transaction before the first INSERT and keeps it open until commit():
    # that is what lets a row and an offset share one. (isolation_level=None would commit each
    # statement on its own: two transactions, and a crash can fall between them.)
    conn = sqlite3.connect(db_path)
    conn.executescript(SCHEMA)
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        # The database is the only record of progress. Offsets committed to Kafka would be a second
        # record, written at another moment, that a crash can leave out of step with the rows.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **(config or {}),
    })

    # Kafka remembers the group's position: no need to look anything up on assignment.
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
            payment = json.loads(msg.value())
            # One transaction: the row and "this partition resumes at offset + 1" become durable together
            # or not at all. A crash anywhere inside leaves neither, and the record is read again.
            with conn:
                conn.execute("INSERT INTO payments (payment_id, account, amount) VALUES (?, ?, ?)",
                             (payment["payment_id"], payment["account"], payment["amount"]))
                process(msg)
            # The row is safe: now tell Kafka this record is done.
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()  # leaves the group at once; with auto-commit off it commits nothing to Kafka
        conn.close()
