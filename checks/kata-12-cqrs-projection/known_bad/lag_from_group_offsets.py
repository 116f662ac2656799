"""Known-bad for kata-12: reports the consumer group's lag (end offset minus committed offset) as
the read model's; after a crash the group trails the database."""

import json
import sqlite3

from confluent_kafka import Consumer, KafkaException, TopicPartition

SCHEMA = """
CREATE TABLE IF NOT EXISTS customer_totals (
    customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS applied_offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""


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
        row = db.execute("SELECT next_offset FROM applied_offsets WHERE topic = ? AND partition = ?",
                         (msg.topic(), msg.partition())).fetchone()
        # A partition is applied in offset order, so "offset below the stored next offset"
        # means "already in the read model": a redelivery after a crash or a rewind.
        if row is not None and msg.offset() < row[0]:
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
    # The mistake: the group's committed offsets stand in for what the read model applied.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        applied = {tp.partition: max(tp.offset, 0) for tp in committed}
        lag = {}
        for p in sorted(partitions):
            high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            lag[p] = max(high - applied.get(p, 0), 0)
        return lag
    finally:
        consumer.close()
