"""kata-14 reference solution: a transactional outbox relay that survives a SIGKILL.

The database cannot take part in a Kafka transaction, so "send the row" and "mark it sent"
can never be one atomic step. The relay makes the gap harmless instead: Kafka is the truth
about what was delivered, and a restarted relay asks Kafka before it sends anything.
"""

import json
import sqlite3
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

OPS = {"INSERT": "c", "UPDATE": "u", "DELETE": "d"}
BATCH = 100          # rows per Kafka transaction
IDLE_POLL_S = 0.1    # how often an idle relay looks at the table again


def to_event(row) -> dict:
    row_id, _aggregate, op, before, after = row
    return {
        "op": OPS[op],
        # The columns hold JSON text; a consumer wants objects, not JSON inside JSON.
        "before": json.loads(before) if before is not None else None,
        "after": json.loads(after) if after is not None else None,
        "source": {"table": "outbox", "outbox_id": row_id},
    }


def last_relayed_id(bootstrap_servers: str, topic: str) -> int:
    """The highest outbox id committed to the topic (0 if none).

    Rows are sent in id order to one partition and each batch commits before the next
    begins, so every row up to this id is in the topic. (Reading the whole partition keeps
    this simple; a relay with a long history would start near the end instead.)
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        # Required by the client. This consumer only assign()s and reads: whatever it might
        # auto-commit for this throwaway group is never read by anyone.
        "group.id": "outbox-relay-readback",
        # Only committed transactions count: an aborted batch was never delivered.
        "isolation.level": "read_committed",
        # Tells us when we have read everything there is (up to the last stable offset).
        "enable.partition.eof": True,
    })
    try:
        # A concrete start offset saves the client a round of offset lookups.
        low, _high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, low)])
        last = 0
        while True:
            msg = consumer.poll(10)
            if msg is None:
                raise RuntimeError(f"timed out reading {topic}")
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return last
                raise KafkaException(msg.error())
            last = json.loads(msg.value())["source"]["outbox_id"]
    finally:
        consumer.close()


def relay_outbox(bootstrap_servers: str, db_path: str, topic: str, transactional_id: str,
                 process: Callable[[dict], None], should_stop: Callable[[], bool]) -> None:
    producer = Producer({
        "bootstrap.servers": bootstrap_servers,
        # A stable transactional.id: init_transactions() fences a previous incarnation of this
        # relay (a zombie cannot add records any more) and aborts its open transaction, so the
        # read-back below sees a final answer.
        "transactional.id": transactional_id,
    })
    producer.init_transactions(30)
    db = sqlite3.connect(db_path, timeout=30)
    try:
        # After a crash between "Kafka has it" and "marked sent", the table lies. Kafka knows.
        done = last_relayed_id(bootstrap_servers, topic)
        with db:
            db.execute("UPDATE outbox SET sent = 1 WHERE sent = 0 AND id <= ?", (done,))

        while not should_stop():
            # ORDER BY id: sqlite has one writer at a time, so id order is commit order.
            rows = db.execute("SELECT id, aggregate, op, before, after FROM outbox WHERE sent = 0 "
                              "ORDER BY id LIMIT ?", (BATCH,)).fetchall()
            if not rows:
                time.sleep(IDLE_POLL_S)
                continue
            events = [(row[1], to_event(row)) for row in rows]
            producer.begin_transaction()
            for aggregate, event in events:
                producer.produce(topic, key=aggregate.encode("utf-8"), value=json.dumps(event).encode("utf-8"))
            try:
                # Returns only when every record of the batch is written and committed.
                producer.commit_transaction(30)
            except KafkaException as exc:
                # End the failed transaction now: left open, it would wait (and make the next
                # init_transactions() wait) for the broker to time it out. Not delivered, so not
                # marked: a restarted relay sends these rows again.
                producer.abort_transaction(30)
                raise RuntimeError(f"Kafka refused outbox rows {rows[0][0]}..{rows[-1][0]}: {exc}") from exc
            for _, event in events:
                process(event)
            # A crash before this commit leaves delivered rows unmarked; the read-back above
            # repairs that on the next start instead of sending them twice.
            with db:
                db.executemany("UPDATE outbox SET sent = 1 WHERE id = ?", [(row[0],) for row in rows])
    finally:
        db.close()
