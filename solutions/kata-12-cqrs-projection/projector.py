"""kata-12 reference solution: the read model stores, in the same transaction as the totals,
the next offset it expects per partition; redeliveries below it are skipped, and lag is
measured from it."""

import json
import sqlite3
import uuid
from contextlib import closing, suppress

from confluent_kafka import Consumer, KafkaException, TopicPartition

SCHEMA = """
CREATE TABLE IF NOT EXISTS customer_totals (
    customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS applied_offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""


def open_db(db_path: str) -> sqlite3.Connection:
    # Python's sqlite3 opens a transaction before the first write; `with db:` commits it (or
    # rolls it back if anything raised). timeout: a reader of the read model may hold a lock
    # for a moment; wait for it rather than fail.
    db = sqlite3.connect(db_path, timeout=30)
    db.executescript(SCHEMA)
    return db


def apply_event(db: sqlite3.Connection, msg) -> bool:
    """Apply one event unless the read model already has it. True if it was applied."""
    row = db.execute("SELECT next_offset FROM applied_offsets WHERE topic = ? AND partition = ?",
                     (msg.topic(), msg.partition())).fetchone()
    # A partition is applied in offset order, so "offset below the stored next offset"
    # means "already in the read model": a redelivery after a crash or a rewind.
    if row is not None and msg.offset() < row[0]:
        return False
    with db:  # one transaction: the totals and the offset are committed together, or neither
        event = json.loads(msg.value())
        db.execute("INSERT INTO customer_totals (customer, orders, amount) VALUES (?, 1, ?) "
                   "ON CONFLICT (customer) DO UPDATE SET orders = orders + 1, amount = amount + excluded.amount",
                   (event["customer"], event["amount"]))
        db.execute("INSERT INTO applied_offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
                   "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                   (msg.topic(), msg.partition(), msg.offset() + 1))
    return True


def run_projector(bootstrap_servers: str, topic: str, group_id: str, db_path: str, consumer_config: dict,
                  process, should_stop) -> None:
    with closing(open_db(db_path)) as db:
        consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                             "auto.offset.reset": "earliest",
                             # We commit after the read model has the event, never before.
                             "enable.auto.commit": False,
                             **consumer_config})
        try:
            consumer.subscribe([topic])
            while not should_stop():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    continue  # transient (a broker went away...): librdkafka recovers on its own
                if apply_event(db, msg):
                    process(msg)
                # A crash right here redelivers this event; apply_event will skip it. Skipped
                # events are committed too, so the group's position moves past them.
                # A commit refused during a rebalance only means this event may come again, and
                # the read model already knows to skip it.
                with suppress(KafkaException):
                    consumer.commit(message=msg, asynchronous=False)
        finally:
            consumer.close()  # leaves the group now, instead of when the session times out


def applied_offsets(db_path: str, topic: str) -> dict[int, int]:
    with closing(open_db(db_path)) as db:
        return dict(db.execute("SELECT partition, next_offset FROM applied_offsets WHERE topic = ?",
                               (topic,)).fetchall())


def projection_lag(bootstrap_servers: str, topic: str, group_id: str, db_path: str) -> dict[int, int]:
    # Lag of the read model: what the topic has minus what the database applied. The
    # group's committed offsets (group_id) can trail the database after a crash, so they
    # are not used. A throwaway group id only because librdkafka requires one.
    applied = applied_offsets(db_path, topic)
    with closing(Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"lag-probe-{uuid.uuid4()}"})) as c:
        partitions = c.list_topics(topic, timeout=10).topics[topic].partitions
        # Nothing applied yet from p: the projector starts at the beginning, offset 0.
        return {p: max(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] - applied.get(p, 0), 0)
                for p in sorted(partitions)}
