"""kata-22 reference solution: Debezium streams the tables (snapshot, then the WAL) into compacted
topics as plain JSON; the consumer keeps a SQLite replica keyed by (table, primary key) and stores,
in the same transaction as each change, the next offset it expects per partition."""

import json
import sqlite3
from contextlib import closing, suppress

from confluent_kafka import Consumer, KafkaException

JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"

SCHEMA = """
CREATE TABLE IF NOT EXISTS replica (
    source TEXT NOT NULL, key TEXT NOT NULL, row TEXT NOT NULL, lsn INTEGER NOT NULL,
    PRIMARY KEY (source, key));
CREATE TABLE IF NOT EXISTS applied_offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""


def connector_config(pg: dict, tables: list[str], topic_prefix: str) -> dict:
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": pg["host"],
        "database.port": str(pg["port"]),
        "database.user": pg["user"],
        "database.password": pg["password"],
        "database.dbname": pg["dbname"],
        # pgoutput is built into PostgreSQL (no server plugin to install).
        "plugin.name": "pgoutput",
        # Topics are named <prefix>.<schema>.<table>.
        "topic.prefix": topic_prefix,
        "table.include.list": ",".join(tables),
        # One slot per connector: the server keeps the WAL until this slot has confirmed it, so a
        # stopped connector resumes where it was (never drop it on stop).
        "slot.name": f"{topic_prefix}_slot",
        "publication.name": f"{topic_prefix}_pub",
        # The publication holds only our tables, not every table of the database.
        "publication.autocreate.mode": "filtered",
        # Rows that exist before the connector are read once (op "r"), then the WAL from that point.
        "snapshot.mode": "initial",
        # After each delete event, a record with the key and no value: compaction can then drop the key.
        "tombstones.on.delete": "true",
        # Plain JSON, no schema wrapped around every key and value.
        "key.converter": JSON_CONVERTER,
        "key.converter.schemas.enable": "false",
        "value.converter": JSON_CONVERTER,
        "value.converter.schemas.enable": "false",
        # NUMERIC as its decimal text ("12.50"), not the unscaled value's bytes.
        "decimal.handling.mode": "string",
        # The broker does not auto-create topics: the connector creates its own, compacted (the latest
        # change per key is the row).
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "1",
        "topic.creation.default.cleanup.policy": "compact",
    }


def open_replica(replica_path: str) -> sqlite3.Connection:
    db = sqlite3.connect(replica_path, timeout=30)
    db.executescript(SCHEMA)
    return db


def apply_change(db: sqlite3.Connection, msg) -> bool:
    """Apply one record of a change topic unless the replica already has it. True for an applied change."""
    done = db.execute("SELECT next_offset FROM applied_offsets WHERE topic = ? AND partition = ?",
                      (msg.topic(), msg.partition())).fetchone()
    if done is not None and msg.offset() < done[0]:
        return False  # redelivered after a crash: already in the replica
    value = msg.value()
    with db:  # one transaction: the change and the stored offset, or neither
        if value is not None:  # None: the tombstone after a delete; the delete event did the work
            event = json.loads(value)
            source = f"{event['source']['schema']}.{event['source']['table']}"
            key = msg.key().decode()  # the primary key columns, e.g. {"order_id":1,"line_no":2}
            if event["op"] == "d":
                db.execute("DELETE FROM replica WHERE source = ? AND key = ?", (source, key))
            else:  # r (snapshot), c, u: the row is now `after`
                db.execute("INSERT INTO replica (source, key, row, lsn) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT (source, key) DO UPDATE SET row = excluded.row, lsn = excluded.lsn",
                           (source, key, json.dumps(event["after"]), event["source"]["lsn"]))
        db.execute("INSERT INTO applied_offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
                   "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                   (msg.topic(), msg.partition(), msg.offset() + 1))
    return value is not None


def apply_changes(bootstrap_servers: str, topics: list[str], group_id: str, replica_path: str,
                  consumer_config: dict, process, should_stop) -> None:
    with closing(open_replica(replica_path)) as db:
        consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                             "auto.offset.reset": "earliest",
                             "enable.auto.commit": False,  # commit after the replica has the change
                             **consumer_config})
        try:
            consumer.subscribe(topics)
            while not should_stop():
                msg = consumer.poll(0.5)
                # `is None`, not `not msg`: a tombstone has no value, and a Message's len() is its value's.
                if msg is None:
                    continue
                if msg.error():
                    continue  # transient (a topic not created yet...): librdkafka recovers on its own
                if apply_change(db, msg):
                    process(msg)
                # A crash right here redelivers this record; apply_change skips it.
                with suppress(KafkaException):
                    consumer.commit(message=msg, asynchronous=False)
        finally:
            consumer.close()
