"""Known-bad for kata-14: sends the row's state alone, without the change envelope."""

import json
import sqlite3
import time
from collections.abc import Callable

from confluent_kafka import KafkaException, Producer


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
            for row_id, aggregate, _op, before, after in rows:
                # The latest state is all a consumer needs... or is it? (a DELETE sends the old state)
                event = {**json.loads(after or before), "source": {"table": "outbox", "outbox_id": row_id}}
                errors = []
                producer.produce(topic, key=aggregate.encode(), value=json.dumps(event).encode(),
                                 on_delivery=lambda err, msg, errors=errors: err and errors.append(err))
                if producer.flush(30) or errors:
                    raise KafkaException(errors[0] if errors else "delivery timed out")
                process(event)
                with db:
                    db.execute("UPDATE outbox SET sent = 1 WHERE id = ?", (row_id,))
    finally:
        db.close()
