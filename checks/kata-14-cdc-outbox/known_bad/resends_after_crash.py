"""Known-bad for kata-14: marks rows only after delivery, but trusts the sent column after a crash."""

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
        # (no read-back: rows delivered but not marked before a crash are sent again)
        while not should_stop():
            rows = db.execute("SELECT id, aggregate, op, before, after FROM outbox WHERE sent = 0 "
                              "ORDER BY id LIMIT 100").fetchall()
            if not rows:
                time.sleep(0.1)
                continue
            for row in rows:
                event = to_event(row)
                errors = []
                producer.produce(topic, key=row[1].encode(), value=json.dumps(event).encode(),
                                 on_delivery=lambda err, msg, errors=errors: err and errors.append(err))
                if producer.flush(30) or errors:
                    raise KafkaException(errors[0] if errors else "delivery timed out")
                process(event)
                with db:
                    db.execute("UPDATE outbox SET sent = 1 WHERE id = ?", (row[0],))
    finally:
        db.close()
