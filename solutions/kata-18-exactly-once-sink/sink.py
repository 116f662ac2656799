"""kata-18 reference solution: each row and its partition's next offset commit in one sqlite transaction,
and every assignment starts where the database says the sink stopped."""

import contextlib
import json
import sqlite3
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message

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


def _open_database(db_path: str) -> sqlite3.Connection:
    # Python's sqlite3 opens a transaction before the first INSERT and keeps it open until commit():
    # that is what lets a row and an offset share one. (isolation_level=None would commit each
    # statement on its own: two transactions, and a crash can fall between them.)
    conn = sqlite3.connect(db_path)
    # IF NOT EXISTS: the file may hold an earlier run's rows and offsets (or a restored backup).
    conn.executescript(SCHEMA)
    return conn


def run_sink(bootstrap_servers: str, topic: str, group_id: str, db_path: str, process: Callable[[Message], None],
             should_stop: Callable[[], bool], config: dict | None = None) -> None:
    # closing(): sqlite3's own "with conn:" commits a transaction; it does not close the connection.
    with contextlib.closing(_open_database(db_path)) as conn:
        consumer = Consumer({
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            # The database is the only record of progress. Offsets committed to Kafka would be a second
            # record, written at another moment, that a crash can leave out of step with the rows.
            "enable.auto.commit": False,
            # Only decides when a stored offset no longer exists (retention deleted those records):
            # then resume at the oldest record still there, never skip to the end.
            "auto.offset.reset": "earliest",
            **(config or {}),
        })

        def on_assign(consumer: Consumer, partitions: list) -> None:
            # Whatever Kafka has (or has not) committed for this group, resume exactly after the last
            # row this database holds for each partition; a partition it has never seen starts at the
            # beginning.
            stored = dict(conn.execute("SELECT partition, next_offset FROM kafka_offsets WHERE topic = ?", (topic,)))
            for tp in partitions:
                tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
            # Changing tp.offset does nothing by itself: assign() is what hands the positions to librdkafka.
            consumer.assign(partitions)

        consumer.subscribe([topic], on_assign=on_assign)
        try:
            while not should_stop():
                msg = consumer.poll(0.5)
                # An error event carries no record; librdkafka retries transient errors by itself.
                if msg is None or msg.error():
                    continue
                payment = json.loads(msg.value())
                # One transaction: the row and "this partition resumes at offset + 1" become durable together
                # or not at all. A crash anywhere inside leaves neither, and the record is read again.
                with conn:  # commits when the block ends, rolls back if it raises
                    conn.execute("INSERT INTO payments (payment_id, account, amount) VALUES (?, ?, ?)",
                                 (payment["payment_id"], payment["account"], payment["amount"]))
                    process(msg)
                    conn.execute("INSERT OR REPLACE INTO kafka_offsets (topic, partition, next_offset) "
                                 "VALUES (?, ?, ?)", (msg.topic(), msg.partition(), msg.offset() + 1))
        finally:
            consumer.close()  # leaves the group at once; with auto-commit off it commits nothing to Kafka
