"""Helpers for kata-14's checks: the outbox database, the relay process, the topic read back."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from grader.checklib import ChildRun, explain

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
STOP_LIMIT_S = 3.0  # an idle relay looks at should_stop() every ~0.1 s; then it closes and exits


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

    def hold_insert(self, rows) -> sqlite3.Connection:
        """Insert rows in a write transaction left open (the database stays locked for writers until
        the caller commits and closes the returned connection), like a slow application transaction."""
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO outbox (aggregate, op, before, after) VALUES (?, ?, ?, ?)", rows)
        return db

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


def wait_until_sent(run: ChildRun, db: Outbox, ids: list[int], did: str, timeout: float = 45.0,
                    nudge: str = "does your relay keep polling the table, and mark each row once Kafka confirmed it?",
                    ) -> None:
    """Wait until every row in `ids` is marked sent, failing early if the relay dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(ids) <= set(db.sent_ids()):
            return
        fail_if_died(run, did)
        time.sleep(0.1)
    missing = sorted(set(ids) - set(db.sent_ids()))
    explain(did=did, saw=f"after {timeout:.0f}s, outbox rows {missing} are still not marked sent (sent = 0)",
            expected=f"rows {ids[0]}..{ids[-1]} relayed and marked sent (sent = 1) within {timeout:.0f}s",
            nudge=nudge)


def stop_relay(run: ChildRun, did: str) -> None:
    run.stop()
    asked = time.monotonic()
    code = run.wait(timeout=30)
    took = time.monotonic() - asked
    if code == 0 and took > STOP_LIMIT_S:
        explain(did=did + ", then made should_stop() return True (the outbox had no unsent rows)",
                saw=f"relay_outbox took {took:.1f}s to return",
                expected=f"it returns soon (within {STOP_LIMIT_S:.0f}s)",
                nudge="how long does your relay sleep or wait when the outbox is empty, before it looks at "
                "should_stop() again?")
    if code is None:
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


_STOP_WATCH = '''"""Generated by kata-14's checks: the learner's relay_outbox, with should_stop() timed
and a pause after one process() call."""
import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, {impl_dir!r})
_spec = importlib.util.spec_from_file_location("kata14_learner", {impl!r})
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)


def relay_outbox(**kwargs):
    inner, inner_process = kwargs.pop("should_stop"), kwargs.pop("process")
    calls = 0

    def should_stop():
        answer = bool(inner())
        with open({events!r}, "a", encoding="utf-8") as fh:
            fh.write(f"{{time.monotonic():.4f}} {{int(answer)}}\\n")
        return answer

    def process(event):
        nonlocal calls
        inner_process(event)
        calls += 1
        if calls == {pause_at!r}:  # wait (a while at most) until the check has done what it needs
            Path({paused!r}).write_text("paused")
            deadline = time.monotonic() + 20
            while not Path({resume!r}).exists() and time.monotonic() < deadline:
                time.sleep(0.01)

    return _module.relay_outbox(**kwargs, should_stop=should_stop, process=process)
'''


@dataclass
class Watched:
    wrapper: Path  # the module to hand ChildRun instead of the learner's file
    events: Path  # should_stop() calls: monotonic time and answer
    paused: Path  # written when the pause_at-th process() call has returned to the wrapper
    resume: Path  # the check creates it to let the relay go on


def stop_watch(impl_path, workdir, name: str, pause_at: int | None = None) -> Watched:
    """A module running the learner's relay_outbox with a should_stop() that logs each call's time and
    answer, and a process() that pauses after its pause_at-th call until the check resumes it (the
    learner's module is untouched)."""
    folder = Path(workdir) / f"watched-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    w = Watched(folder / "watched_relay.py", folder / "should_stop.txt", folder / "paused", folder / "resume")
    w.wrapper.write_text(_STOP_WATCH.format(impl=str(impl_path), impl_dir=str(Path(impl_path).parent),
                                            events=str(w.events), pause_at=pause_at, paused=str(w.paused),
                                            resume=str(w.resume)))
    return w


def idle_interval(events: Path, after: float, looks: int = 3, timeout: float = 5.0) -> float | None:
    """Wait for `looks` should_stop() calls after monotonic time `after` (the outbox is empty by then) and
    return the shortest time between two of them: the relay's pause between looks at an empty outbox."""
    deadline = time.monotonic() + timeout
    while True:
        stamps = [float(line.split()[0]) for line in (events.read_text().splitlines() if events.exists() else [])
                  if line.strip() and float(line.split()[0]) > after]
        if len(stamps) >= looks or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return min(gaps) if gaps else None


def busiest_second(events: Path) -> int:
    """The most should_stop() calls the relay made within any one second."""
    if not events.exists():
        return 0
    stamps = [float(line.split()[0]) for line in events.read_text().splitlines() if line.strip()]
    most, first = 0, 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] > 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


TXN_STATES = {0: "Empty", 1: "Ongoing", 2: "PrepareCommit", 3: "PrepareAbort", 4: "CompleteCommit",
              5: "CompleteAbort", 6: "Dead", 7: "PrepareEpochFence"}


def _coordinator_records(kafka, since_ms: int, timeout: float = 5):
    """(transactional.id, value) of every record the transaction coordinators wrote since `since_ms`."""
    topic = "__transaction_state"
    consumer = kafka.consumer(**{"fetch.wait.max.ms": 50})
    try:
        md = kafka.admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error:
            return
        starts = consumer.offsets_for_times([TopicPartition(topic, part, since_ms) for part in md.partitions],
                                            timeout=10)
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in starts}
        todo = {tp.partition for tp in starts if 0 <= tp.offset < ends[tp.partition]}
        consumer.assign([tp for tp in starts if tp.partition in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            key = msg.key() or b""
            # key: version int16, then the transactional.id as int16 length + UTF-8
            if msg.value() and len(key) > 4:
                yield key[4:].decode("utf-8", "replace"), msg.value()
            if msg.offset() + 1 >= ends[msg.partition()]:
                todo.discard(msg.partition())
    finally:
        consumer.close()


def transaction_state(kafka, transactional_id: str, since_ms: int) -> str | None:
    """The latest state the transaction coordinator recorded for this transactional.id since `since_ms`
    (value: version int16, producer id int64, epoch int16, timeout int32, state int8, ...), or None."""
    found = None
    for tid, value in _coordinator_records(kafka, since_ms):
        if tid == transactional_id and len(value) >= 17:
            found = TXN_STATES.get(value[16], str(value[16]))
    return found


def writers_of(kafka, topic: str, since_ms: int) -> set[str]:
    """Every transactional.id whose transaction (as the coordinator recorded it) included `topic`."""
    return {tid for tid, value in _coordinator_records(kafka, since_ms) if topic.encode() in value}


class AbortedBatch:
    """Events of outbox rows written to the topic in a transaction that is then aborted: what a relay
    instance that died before its commit leaves behind. The transactional producer (its own
    transactional.id) is made ready in the background, while the check does other things."""

    def __init__(self, kafka, transactional_id: str):
        self.producer = kafka.producer(**{"transactional.id": transactional_id})
        self.transactional_id = transactional_id
        self._ready = threading.Thread(target=self.producer.init_transactions, args=(30,), daemon=True)
        self._ready.start()

    def write(self, topic: str, db: Outbox, ids) -> None:
        self._ready.join(30)
        self.producer.begin_transaction()
        rows = db.rows()
        for i in ids:
            row = rows[i]
            event = {"op": OPS[row["op"]], "before": json.loads(row["before"]) if row["before"] else None,
                     "after": json.loads(row["after"]) if row["after"] else None,
                     "source": {"table": "outbox", "outbox_id": i}}
            self.producer.produce(topic, key=row["aggregate"].encode(), value=json.dumps(event).encode())
        self.producer.flush(30)
        self.producer.abort_transaction(30)
