"""kata-12: feed an idempotent read model in SQLite, and know how far behind it is.

Implement run_projector() (consume order events, maintain customer_totals exactly once
per event, even when Kafka delivers an event again) and projection_lag().
Read README.md first.
"""

import json
import sqlite3

from confluent_kafka import Consumer, KafkaException

SCHEMA = """
CREATE TABLE IF NOT EXISTS customer_totals (
    customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, amount INTEGER NOT NULL);
"""
# TODO: what else must the database remember so that a redelivered event changes nothing?


def apply_event(db: sqlite3.Connection, msg) -> bool:
    """Apply one event to the read model in one transaction. Return True if it was applied,
    False if the read model already had it."""
    event = json.loads(msg.value())
    # TODO: in ONE transaction: detect an event that is already applied (skip it), else add
    #       1 order and event["amount"] to event["customer"]'s row, and remember it is applied.
    raise NotImplementedError(f"apply_event() is not written yet (event {event.get('event_id')})")


def run_projector(bootstrap_servers: str, topic: str, group_id: str, db_path: str, consumer_config: dict,
                  process, should_stop) -> None:
    """Keep the read model at `db_path` up to date with `topic` until should_stop() is True.

    consumer_config: extra consumer settings from the checks; add them all.
    process(msg): call it after the transaction that applied msg committed (not for skipped events).
    """
    db = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    db.executescript(SCHEMA)
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, **consumer_config})
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
            if apply_event(db, msg):
                process(msg)
            # TODO: commit this event's offset to Kafka (after the database has it).
    finally:
        consumer.close()
        db.close()


def projection_lag(bootstrap_servers: str, topic: str, group_id: str, db_path: str) -> dict[int, int]:
    """For every partition of `topic`: how many of its records the read model has not applied."""
    # TODO: what does the read model know about how far it got, and where does the topic end?
    raise NotImplementedError("projection_lag() is not written yet")
