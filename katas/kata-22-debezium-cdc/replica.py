"""kata-22: stream PostgreSQL into Kafka with Debezium, and keep a replica from the change events.

Write connector_config() (the Debezium connector's settings; the checks register it on a real
Kafka Connect worker) and apply_changes() (a consumer that keeps a SQLite replica of the tables
from the change topics, exactly once per change, across crashes). Read README.md first.
"""

import json
import sqlite3

from confluent_kafka import Consumer, KafkaException

SCHEMA = """
CREATE TABLE IF NOT EXISTS replica (
    source TEXT NOT NULL, key TEXT NOT NULL, row TEXT NOT NULL, lsn INTEGER NOT NULL,
    PRIMARY KEY (source, key));
"""
# TODO: what else must the replica remember so that a redelivered change changes nothing?


def connector_config(pg: dict, tables: list[str], topic_prefix: str) -> dict:
    """The Debezium PostgreSQL connector's configuration for these tables (README: every setting it needs).

    pg: {"host", "port", "user", "password", "dbname"} of the source database.
    tables: the tables to capture, as "schema.table".
    topic_prefix: the first part of every change topic's name; also names the slot and the publication.
    """
    # TODO: connector class, database, plugin, topic prefix, tables, slot and publication names,
    #       snapshot mode, tombstones, key/value converters, decimals, topic creation.
    raise NotImplementedError(f"connector_config() is not written yet (topic prefix {topic_prefix})")


def apply_change(db: sqlite3.Connection, msg) -> bool:
    """Apply one record of a change topic in one transaction. True if it was a change the replica
    did not have yet (then the caller calls process(msg)), False otherwise."""
    event = None if msg.value() is None else json.loads(msg.value())  # None: a tombstone
    # TODO: skip a record the replica already applied; a tombstone changes no row; op "r"/"c"/"u"
    #       writes event["after"] under (source, key); op "d" removes the row.
    raise NotImplementedError(f"apply_change() is not written yet (op {event and event.get('op')!r} at "
                              f"{msg.topic()} offset {msg.offset()})")


def apply_changes(bootstrap_servers: str, topics: list[str], group_id: str, replica_path: str,
                  consumer_config: dict, process, should_stop) -> None:
    """Keep the replica at `replica_path` up to date with the change topics until should_stop() is True.

    consumer_config: extra consumer settings from the checks; add them all.
    process(msg): call it after the transaction that applied a change committed (not for tombstones,
    not for changes the replica already had).
    """
    db = sqlite3.connect(replica_path, timeout=30)
    db.executescript(SCHEMA)
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, **consumer_config})
    try:
        consumer.subscribe(topics)
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                continue
            if apply_change(db, msg):
                process(msg)
            # TODO: commit this record's offset to Kafka (after the replica has it).
    finally:
        consumer.close()
        db.close()
