"""Helpers for kata-14's checks: the outbox database, the relay process, the topic read back."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from grader.kit import ChildRun, explain

SCHEMA = """
CREATE TABLE outbox (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate TEXT    NOT NULL,
    op        TEXT    NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    before    TEXT,
    after     TEXT,
    sent      INTEGER NOT NULL DEFAULT 0
)
"""

# (aggregate, op, fields that change). Aggregates are interleaved on purpose: commit order is
# not the order of any single aggregate.
STORY = [
    ("customer-1", "INSERT", {"name": "Ada", "tier": "basic"}),
    ("order-1", "INSERT", {"customer": "customer-1", "status": "new", "total": 30}),
    ("order-2", "INSERT", {"customer": "customer-1", "status": "new", "total": 12}),
    ("order-1", "UPDATE", {"status": "paid"}),
    ("customer-1", "UPDATE", {"tier": "gold"}),
    ("order-2", "DELETE", None),
    ("customer-2", "INSERT", {"name": "Bob", "tier": "basic"}),
    ("order-3", "INSERT", {"customer": "customer-2", "status": "new", "total": 99}),
    ("order-1", "UPDATE", {"status": "shipped"}),
    ("order-3", "UPDATE", {"status": "paid"}),
    ("customer-2", "UPDATE", {"name": "Bob B."}),
    ("order-4", "INSERT", {"customer": "customer-1", "status": "new", "total": 7}),
    ("order-3", "DELETE", None),
    ("order-4", "UPDATE", {"status": "paid"}),
    ("customer-1", "UPDATE", {"tier": "platinum"}),
    ("order-4", "UPDATE", {"status": "shipped"}),
]
OPS = {"INSERT": "c", "UPDATE": "u", "DELETE": "d"}
# A topic max.message.bytes that a change event cannot fit in (each state carries 256 random
# bytes as hex, so even a compressed batch of one event is larger), while the broker's own
# transaction markers (about 80 bytes) still fit: a transactional relay can still abort.
REFUSING_MAX_MESSAGE_BYTES = "200"
DEFAULT_MAX_MESSAGE_BYTES = "1048588"


def story_rows(count: int) -> list[tuple[str, str, str | None, str | None]]:
    """The first `count` changes as outbox rows (aggregate, op, before JSON, after JSON)."""
    state: dict[str, dict] = {}
    rows = []
    for aggregate, op, fields in STORY[:count]:
        before = state.get(aggregate)
        after = None
        if op != "DELETE":
            after = {**(before or {"id": aggregate}), **fields, "notes": os.urandom(256).hex()}
            state[aggregate] = after
        else:
            state.pop(aggregate)
        rows.append((aggregate, op, json.dumps(before) if before else None, json.dumps(after) if after else None))
    return rows


class Outbox:
    """The application's database, seen from the check (its own connection)."""

    def __init__(self, path: Path):
        self.path = str(path)
        db = self._connect()
        try:
            db.execute("PRAGMA journal_mode=WAL")  # the relay reads while the check writes
            db.execute(SCHEMA)
            db.commit()
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def insert(self, rows) -> None:
        """Commit rows in one transaction, like an application committing its business change."""
        db = self._connect()
        try:
            with db:
                db.executemany("INSERT INTO outbox (aggregate, op, before, after) VALUES (?, ?, ?, ?)", rows)
        finally:
            db.close()

    def rows(self) -> dict[int, dict]:
        db = self._connect()
        try:
            cur = db.execute("SELECT id, aggregate, op, before, after, sent FROM outbox ORDER BY id")
            return {r[0]: {"id": r[0], "aggregate": r[1], "op": r[2], "before": r[3], "after": r[4], "sent": r[5]}
                    for r in cur.fetchall()}
        finally:
            db.close()

    def sent_ids(self) -> list[int]:
        return [i for i, r in self.rows().items() if r["sent"]]


def start_relay(impl_path, tmp_path, kafka, db: Outbox, topic: str, txid: str, crash_after=None) -> ChildRun:
    return ChildRun(impl_path, "relay_outbox",
                    {"bootstrap_servers": kafka.bootstrap_servers, "db_path": db.path, "topic": topic,
                     "transactional_id": txid},
                    workdir=tmp_path, crash_after=crash_after, name="relay")


def call_desc(topic: str, note: str = "") -> str:
    return f"ran relay_outbox(bootstrap, db_path, {topic!r}, transactional_id, process, should_stop){note}"


def fail_if_died(run: ChildRun, did: str) -> None:
    """The relay stopped on its own: say why, in the learner's terms."""
    if run.proc.poll() is None:
        return
    err = run.error()
    if err and err["type"] == "NotImplementedError":
        explain(did=did, saw="NotImplementedError: the relay is still the stub", expected="it to relay the outbox")
    if err:
        explain(did=did, saw=f"the relay raised {err['type']}: {err['message']}\n{err['traceback'][-1500:]}",
                expected="it to keep relaying until should_stop() returns True",
                nudge="read the exception: what did sqlite or Kafka refuse?")
    if run.proc.returncode == 0:
        explain(did=did, saw="relay_outbox returned although should_stop() was still False",
                expected="a relay that keeps polling the outbox for new rows until should_stop() is True",
                nudge="an outbox relay is a long-running loop: new rows arrive while it runs.")
    explain(did=did, saw=f"the relay process died (exit code {run.proc.returncode}). Output:\n{run.output()}",
            expected="it to keep relaying until should_stop() returns True")


def wait_until_sent(run: ChildRun, db: Outbox, ids: list[int], did: str, timeout: float = 45.0) -> None:
    """Wait until every row in `ids` is marked sent, failing early if the relay dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(ids) <= set(db.sent_ids()):
            return
        fail_if_died(run, did)
        time.sleep(0.1)
    missing = sorted(set(ids) - set(db.sent_ids()))
    explain(did=did, saw=f"after {timeout:.0f}s, outbox rows {missing} are still not marked sent (sent = 0)",
            expected=f"rows {ids[0]}..{ids[-1]} relayed and marked sent (sent = 1)",
            nudge="does your relay keep polling the table, and mark each row once Kafka confirmed it?")


def stop_relay(run: ChildRun, did: str) -> None:
    run.stop()
    if run.wait(timeout=30) is None:
        run.kill()
        explain(did=did + ", then made should_stop() return True",
                saw="the relay was still running 30s later", expected="relay_outbox to return soon after",
                nudge="check should_stop() in your loop, also while the outbox is empty.")
    if run.proc.returncode != 0:
        fail_if_died(run, did)


def events_by_id(kafka, topic: str, did: str) -> list[tuple[int, dict, object]]:
    """The topic as (outbox_id, event, record), in offset order; explains records that are not events."""
    out = []
    for record in sorted(kafka.read_all(topic, timeout=20), key=lambda r: r.offset):
        try:
            event = json.loads(record.value)
            outbox_id = event["source"]["outbox_id"]
        except (TypeError, ValueError, KeyError):
            explain(did=did + ", then read the topic back",
                    saw=f"offset {record.offset} holds {record.value_text!r:.200}",
                    expected='every value a JSON change event whose "source" holds the "outbox_id" of its row',
                    nudge="the README's envelope: op, before, after and source.")
        out.append((outbox_id, event, record))
    return out


def set_max_message_bytes(kafka, topic: str, value: str) -> None:
    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("max.message.bytes", value, incremental_operation=AlterConfigOpType.SET)])
    kafka.admin.incremental_alter_configs([resource])[resource].result(timeout=30)

    def applied() -> bool:
        current = ConfigResource("topic", topic)
        return kafka.admin.describe_configs([current])[current].result(timeout=10)["max.message.bytes"].value == value
    deadline = time.monotonic() + 30
    while not applied():
        if time.monotonic() > deadline:
            raise RuntimeError(f"max.message.bytes of {topic} never became {value}")
        time.sleep(0.1)
