"""kata-14: relay database changes to Kafka with the outbox pattern.

Implement relay_outbox(): read the outbox table in commit order, send each row to Kafka as
a change event, mark it sent only once Kafka has it, and never send a row twice, not even
after a crash. Read README.md first.
"""

import json
import sqlite3
import time
from collections.abc import Callable

from confluent_kafka import Producer

IDLE_POLL_S = 0.1  # how often an idle relay looks at the table again


def to_event(row) -> dict:
    """The change event (a dict) for one outbox row (id, aggregate, op, before, after)."""
    row_id, aggregate, op, before, after = row
    # TODO: build the envelope described in the README: op ("c", "u" or "d"), before,
    #       after (JSON objects or None, not JSON text) and source.
    raise NotImplementedError("to_event")


def relay_outbox(bootstrap_servers: str, db_path: str, topic: str, transactional_id: str,
                 process: Callable[[dict], None], should_stop: Callable[[], bool]) -> None:
    """Relay unsent outbox rows of the sqlite database at `db_path` to `topic`, until should_stop().

    bootstrap_servers: where the broker is. topic: the (one-partition) topic to write to.
    transactional_id: a stable id for this relay, the same after a restart (for a
        transactional producer, if you use one).
    process(event): call it once per row, after Kafka confirmed the row's event and before
        you mark the row sent.
    should_stop(): return when it is True; check it often.

    Raises if Kafka refuses a row (that row stays unsent).
    """
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    db = sqlite3.connect(db_path, timeout=30)
    try:
        # TODO: after a crash, some rows may be in Kafka but not marked sent. Find out what
        #       Kafka already has before sending anything.
        while not should_stop():
            # TODO: which order must the rows go out in?
            rows = db.execute("SELECT id, aggregate, op, before, after FROM outbox WHERE sent = 0").fetchall()
            if not rows:
                time.sleep(IDLE_POLL_S)
                continue
            for row in rows:
                event = to_event(row)
                producer.produce(topic, key=row[1].encode("utf-8"), value=json.dumps(event).encode("utf-8"))
                # TODO: is the row delivered now? Call process(event), then mark the row sent
                #       (UPDATE outbox SET sent = 1 ...), only once Kafka confirmed it.
    finally:
        db.close()
