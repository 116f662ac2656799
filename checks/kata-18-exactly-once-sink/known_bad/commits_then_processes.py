"""kata-18 known-bad: two sqlite transactions per record (row, then offset), process() after both."""

import json
import sqlite3
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message

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

    def on_assign(consumer: Consumer, partitions: list) -> None:
        # Whatever Kafka has (or has not) committed for this group, resume exactly after the last
        # row this database holds for each partition; a partition it has never seen starts at the beginning.
        stored = dict(conn.execute("SELECT partition, next_offset FROM kafka_offsets WHERE topic = ?", (topic,)))
        for tp in partitions:
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        # Changing tp.offset does nothing by itself: assign() is what hands the positions to librdkafka.
        consumer.assign(partitions)

    consumer.subscribe([topic], on_assign=on_assign)
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
            # Known-bad: the row and the offset each commit on their own, and process() runs only
            # after both. The crash in process() never falls between the two commits, but a real
            # crash can: a committed row without its offset is read and written again.
            with conn:
                conn.execute("INSERT INTO payments (payment_id, account, amount) VALUES (?, ?, ?)",
                             (payment["payment_id"], payment["account"], payment["amount"]))
            with conn:
                conn.execute("INSERT OR REPLACE INTO kafka_offsets (topic, partition, next_offset) VALUES (?, ?, ?)",
                             (msg.topic(), msg.partition(), msg.offset() + 1))
            process(msg)
    finally:
        consumer.close()  # leaves the group at once; with auto-commit off it commits nothing to Kafka
        conn.close()
