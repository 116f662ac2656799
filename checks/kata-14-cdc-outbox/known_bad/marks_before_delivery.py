"""Known-bad for kata-14: marks rows sent first, then sends them."""

import json
import sqlite3
import time
from collections.abc import Callable

from confluent_kafka import KafkaException, Producer

OPS = {"INSERT": "c", "UPDATE": "u", "DELETE": "d"}


def to_event(row) -> dict:
    row_id, _aggregate, op, before, after = row
    return {"op": OPS[op], "before": json.loads(before) if before is not None else None,
            "after": json.loads(after) if after is not None else None,
            "source": {"table": "outbox", "outbox_id": row_id}}


def relay_outbox(bootstrap_servers: str, db_path: str, topic: str, transactional_id: str,
                 process: Callable[[dict], None], should_stop: Callable[[], bool]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    db = sqlite3.connect(db_path, timeout=30)
    try:
        while not should_stop():
            rows = db.execute("SELECT id, aggregate, op, before, after FROM outbox WHERE sent = 0 "
                              "ORDER BY id LIMIT 100").fetchall()
            if not rows:
                time.sleep(0.1)
                continue
            # "Claim" the rows first, so they are never sent twice...
            with db:
                db.executemany("UPDATE outbox SET sent = 1 WHERE id = ?", [(row[0],) for row in rows])
            errors = []
            events = [to_event(row) for row in rows]
            for row, event in zip(rows, events, strict=True):
                producer.produce(topic, key=row[1].encode(), value=json.dumps(event).encode(),
                                 on_delivery=lambda err, msg, errors=errors: err and errors.append(err))
            if producer.flush(30) or errors:
                raise KafkaException(errors[0] if errors else "delivery timed out")
            for event in events:
                process(event)
    finally:
        db.close()
