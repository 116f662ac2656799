"""Known-bad for kata-12: remembers applied offsets in a dict; a restarted process starts with an
empty one and applies redelivered events again."""

import json
import sqlite3
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition

SCHEMA = """
CREATE TABLE IF NOT EXISTS customer_totals (
    customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS applied_offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""


APPLIED: dict[tuple[str, int], int] = {}


def open_db(db_path: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; we say BEGIN and COMMIT ourselves,
    # so the boundary of "applied" is exactly where we put it.
    db = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    db.executescript(SCHEMA)
    return db


def apply_once(db: sqlite3.Connection, msg) -> bool:
    """Apply one event unless the read model already has it. True if it was applied."""
    event = json.loads(msg.value())
    db.execute("BEGIN IMMEDIATE")
    try:
        # The mistake: the memory of what was applied lives in this process only.
        if msg.offset() < APPLIED.get((msg.topic(), msg.partition()), 0):
            db.execute("ROLLBACK")
            return False
        db.execute("INSERT INTO customer_totals (customer, orders, amount) VALUES (?, 1, ?) "
                   "ON CONFLICT (customer) DO UPDATE SET orders = orders + 1, amount = amount + excluded.amount",
                   (event["customer"], event["amount"]))
        # Same transaction as the totals: both survive a crash, or neither does.
        db.execute("INSERT INTO applied_offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
                   "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                   (msg.topic(), msg.partition(), msg.offset() + 1))
        db.execute("COMMIT")
        APPLIED[(msg.topic(), msg.partition())] = msg.offset() + 1
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return True


def run_projector(bootstrap_servers: str, topic: str, group_id: str, db_path: str, consumer_config: dict,
                  process, should_stop) -> None:
    db = open_db(db_path)
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
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                continue
            if apply_once(db, msg):
                process(msg)
            # A crash right here redelivers this event; apply_once will skip it. Skipped
            # events are committed too, so the group's position moves past them.
            try:
                consumer.commit(message=msg, asynchronous=False)
            except KafkaException as exc:
                if exc.args[0].fatal():
                    raise
    finally:
        consumer.close()
        db.close()


def projection_lag(bootstrap_servers: str, topic: str, group_id: str, db_path: str) -> dict[int, int]:
    db = open_db(db_path)
    try:
        applied = dict(db.execute("SELECT partition, next_offset FROM applied_offsets WHERE topic = ?",
                                  (topic,)).fetchall())
    finally:
        db.close()
    # Lag of the read model: what the topic has minus what the database applied. The
    # group's committed offsets (group_id) can trail the database after a crash, so they
    # are not used. A throwaway group id only because librdkafka requires one.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"lag-probe-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        lag = {}
        for p in sorted(partitions):
            high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            # Nothing applied yet from p: the projector starts at the beginning, offset 0.
            lag[p] = max(high - applied.get(p, 0), 0)
        return lag
    finally:
        consumer.close()
