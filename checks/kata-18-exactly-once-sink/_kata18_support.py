"""Helpers for the kata-18 checks: payments on known partitions, the sink's database as the checks
read it, and running the learner's sink (grader.kit.ChildRun) until it has caught up."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaException

from grader.kit import QUIET, ChildRun, explain

PARTITIONS = 3
# Short enough that a SIGKILLed member leaves the group quickly (the broker allows 1000 ms and up),
# long enough that a busy 2-core machine never drops a healthy one (5 heartbeats per session; librdkafka
# heartbeats from its own thread). 1.5 s rather than 3 s: every restart waits one session (issue 15).
SINK_CONFIG = {"session.timeout.ms": 1500, "heartbeat.interval.ms": 300}
SETTLE_S = 40.0  # the most a run may take to catch up (a restart first waits for the dead member to expire)
STOP_S = 15.0
DUPLICATE_GRACE_S = 5.0
CAUGHT_UP_GRACE_S = 2.0
STOP_GAP_S = 2.5  # should_stop() at least once a second, with room for a busy machine

# The contract's tables, for a database the checks prepare themselves ("restored from a backup").
SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT    NOT NULL,
    account    TEXT    NOT NULL,
    amount     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kafka_offsets (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


@dataclass
class Payment:
    payment_id: str
    account: str
    amount: int
    partition: int
    offset: int = -1

    @property
    def row(self) -> tuple[str, str, int]:
        return (self.payment_id, self.account, self.amount)


@dataclass
class Stream:
    topic: str
    group: str
    payments: list[Payment] = field(default_factory=list)

    @property
    def ends(self) -> dict[int, int]:
        out = dict.fromkeys(range(PARTITIONS), 0)
        for p in self.payments:
            out[p.partition] = max(out[p.partition], p.offset + 1)
        return out

    @property
    def ids(self) -> set[str]:
        return {p.payment_id for p in self.payments}


def produce_payments(kafka, per_partition: int, tag: str) -> Stream:
    """A fresh topic with `per_partition` payments on each partition, offsets 0.. in order."""
    stream = Stream(kafka.create_topic(kafka.unique(tag), partitions=PARTITIONS), kafka.unique(f"{tag}-sink"))
    append_payments(kafka, stream, per_partition)
    return stream


def append_payments(kafka, stream: Stream, per_partition: int) -> None:
    """`per_partition` more payments on each partition of the stream's topic, after the ones it has."""
    producer = kafka.producer(**{"enable.idempotence": True})
    start = len(stream.payments) // PARTITIONS
    for n in range(start, start + per_partition):
        for part in range(PARTITIONS):
            account = f"acct-{part}{n % 4}"
            payment = Payment(f"pay-{part}-{n:03d}", account, 100 + 7 * n + part, part)
            stream.payments.append(payment)

            def on_delivery(err, msg, payment=payment):
                if err is None:
                    payment.offset = msg.offset()

            producer.produce(stream.topic, key=account, partition=part, on_delivery=on_delivery,
                             value=json.dumps({"payment_id": payment.payment_id, "account": account,
                                               "amount": payment.amount}))
    if producer.flush(30) or any(p.offset < 0 for p in stream.payments):
        raise KafkaException(f"test payments were not all delivered to {stream.topic}")


def wait_for_rows(run: ChildRun, db_path, stream: Stream, timeout: float = SETTLE_S) -> None:
    """Until the database holds every payment so far (or time is up, or the sink ended): settle() judges."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.proc.poll() is None:
        tally = Tally(db_rows(db_path), stream.ids)
        if not tally.missing or tally.duplicated:
            return
        time.sleep(0.2)  # polling interval of a condition wait bounded by `deadline`


def member_joins_and_leaves(kafka, stream: Stream, timeout: float = 20.0) -> None:
    """A second member of the sink's group takes a share of the partitions, then leaves: the sink loses
    partitions and gets them back, each time at a moment when its database has moved on since it started.
    It commits nothing and reads nothing (the checks' own member, not a second sink)."""
    member = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": stream.group,
                       "enable.auto.commit": False, "auto.offset.reset": "latest", **SINK_CONFIG, **QUIET})
    owned: list = []
    member.subscribe([stream.topic], on_assign=lambda c, parts: owned.extend(parts))
    try:
        deadline = time.monotonic() + timeout
        while not owned and time.monotonic() < deadline:
            member.poll(0.1)  # the group's decisions arrive inside poll(); its records are never handed on
    finally:
        member.close()  # leaves at once: the sink gets every partition back
    if not owned:
        raise RuntimeError(f"check setup: the checks' member of {stream.group} got no partition in {timeout:.0f}s")


# ---- the sink's database, read the way any other program would ---------------------------------------------


def _query(db_path, sql: str, args: tuple = ()) -> list[tuple]:
    if not os.path.exists(db_path):
        return []
    # Read-write on purpose: after a SIGKILL mid-transaction the next connection must roll the
    # journal back (exactly what a restarted sink does) before anything can be read.
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def db_rows(db_path) -> list[tuple[str, str, int]]:
    return [tuple(r) for r in _query(db_path, "SELECT payment_id, account, amount FROM payments")]


def db_offsets(db_path, topic: str) -> dict[int, int]:
    return dict(_query(db_path, "SELECT partition, next_offset FROM kafka_offsets WHERE topic = ?", (topic,)))


# What the restored database also holds from an earlier topic: it must survive untouched.
ARCHIVED_ROW = ("pay-archive-001", "acct-archive", 4200)
ARCHIVED_OFFSETS = {0: 1, 1: 11, 2: 2}


def restore_database(db_path, stream: Stream, done: int, partitions: tuple[int, ...]) -> str:
    """A database 'restored from last night's backup': the rows of the first `done` payments of each of
    `partitions` and, in the same state, next_offset = done for each of them (the other partitions have
    neither); plus a row and offsets of an earlier topic. Returns that earlier topic's name."""
    archived_topic = stream.topic + "-archived"
    conn = sqlite3.connect(db_path)
    try:
        conn.executescript(SCHEMA)
        with conn:
            for p in stream.payments:
                if p.offset < done and p.partition in partitions:
                    conn.execute("INSERT INTO payments VALUES (?, ?, ?)", p.row)
            conn.execute("INSERT INTO payments VALUES (?, ?, ?)", ARCHIVED_ROW)
            for part in partitions:
                conn.execute("INSERT INTO kafka_offsets VALUES (?, ?, ?)", (stream.topic, part, done))
            for part, offset in ARCHIVED_OFFSETS.items():
                conn.execute("INSERT INTO kafka_offsets VALUES (?, ?, ?)", (archived_topic, part, offset))
    finally:
        conn.close()
    return archived_topic


def write_lock_free(db_path) -> bool:
    """True when no connection holds a write transaction on the database (we could start one at once)."""
    conn = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return False
        raise
    finally:
        conn.close()


@dataclass
class Tally:
    rows: list[tuple[str, str, int]]
    expected: set[str]

    @property
    def counts(self) -> Counter:
        return Counter(r[0] for r in self.rows)

    @property
    def duplicated(self) -> list[str]:
        return sorted(i for i, n in self.counts.items() if n > 1)

    @property
    def missing(self) -> list[str]:
        return sorted(self.expected - set(self.counts))

    @property
    def unknown(self) -> list[str]:
        return sorted(set(self.counts) - self.expected)

    def describe(self) -> str:
        parts = [f"the database holds {len(self.rows)} payment rows for {len(self.counts)} distinct payments"]
        if self.missing:
            parts.append(f"{len(self.missing)} payments have no row (e.g. {', '.join(self.missing[:3])})")
        if self.duplicated:
            shown = ", ".join(f"{i} ×{self.counts[i]}" for i in self.duplicated[:3])
            parts.append(f"{len(self.duplicated)} have more than one row (e.g. {shown})")
        if self.unknown:
            parts.append(f"{len(self.unknown)} rows name payments that were never produced (e.g. {self.unknown[:3]})")
        return "; ".join(parts)


# ---- running the learner's sink -----------------------------------------------------------------------------


def call_text(db_path) -> str:
    return (f"run_sink(bootstrap_servers, topic, group_id, db_path={os.path.basename(db_path)!r}, process, "
            f"should_stop, config={SINK_CONFIG})")


def start_sink(impl_path, workdir, kafka, stream: Stream, db_path, crash_after: int | None = None,
               name: str = "sink", hold_at: int | None = None) -> ChildRun:
    return ChildRun(impl_path, "run_sink",
                    {"bootstrap_servers": kafka.bootstrap_servers, "topic": stream.topic, "group_id": stream.group,
                     "db_path": str(db_path), "config": dict(SINK_CONFIG)},
                    workdir=workdir, crash_after=crash_after, name=name, hold_at=hold_at)


def explain_child_error(run: ChildRun, did: str) -> None:
    err = run.error()
    if err:
        explain(did=did, saw=f"run_sink raised {err['type']}: {err['message']}\n{err['traceback'][-1200:]}",
                expected="run_sink keeps consuming until should_stop() returns True")


def wait_for_crash(run: ChildRun, crash_after: int, did: str, timeout: float = SETTLE_S) -> None:
    """Wait for the planned SIGKILL right after the crash_after-th process() call."""
    code = run.wait(timeout)
    if code == -9:
        return
    explain_child_error(run, did)
    processed = len(run.records())
    run.kill()
    explain(did=did, saw=f"after {timeout:.0f}s process() had been called {processed} times "
            f"(exit code {code}); output: {run.output()[-600:] or 'none'}",
            expected=f"process(msg) called once per record, so the planned crash after call {crash_after} happens",
            nudge="call process(msg) for every record, after inserting its row and before committing it.")


_STOP_WATCH = '''"""Generated by kata-18's checks: the learner's run_sink, with should_stop() timed."""
import importlib.util
import sys
import time

sys.path.insert(0, {impl_dir!r})
_spec = importlib.util.spec_from_file_location("kata18_learner", {impl!r})
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)


def run_sink(**kwargs):
    inner = kwargs.pop("should_stop")

    def should_stop():
        answer = bool(inner())
        with open({events!r}, "a", encoding="utf-8") as fh:
            fh.write(f"{{time.monotonic():.4f}} {{int(answer)}}\\n")
        return answer

    return _module.run_sink(**kwargs, should_stop=should_stop)
'''


def stop_watch(impl_path, workdir, name: str):
    """A module running the learner's run_sink with a should_stop() that logs each call's time and
    answer (the learner's module is untouched). Returns (module path, log path)."""
    folder = Path(workdir) / f"watched-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    events = folder / "should_stop.txt"
    wrapper = folder / "watched_sink.py"
    wrapper.write_text(_STOP_WATCH.format(impl=str(impl_path), impl_dir=str(Path(impl_path).parent),
                                          events=str(events)))
    return wrapper, events


def stop_gap(events: Path) -> float | None:
    """Seconds from the last should_stop() that answered False to the first that answered True."""
    if not events.exists():
        return None
    calls = [line.split() for line in events.read_text().splitlines() if line.strip()]
    for i, (stamp, answer) in enumerate(calls):
        if answer == "1":
            return float(stamp) - float(calls[i - 1][0]) if i else None
    return None


def wait_for_hold(run: ChildRun, hold_at: int, did: str, timeout: float = SETTLE_S) -> dict:
    """Wait until the hold_at-th process() call is under way (and hangs); returns its partition and offset."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.proc.poll() is None:
        if run.hold_file.exists():
            return json.loads(run.hold_file.read_text())
        time.sleep(0.05)
    explain_child_error(run, did)
    processed = len(run.records())
    code = run.proc.poll()
    run.kill()
    explain(did=did, saw=f"after {timeout:.0f}s process() had been called {processed} times "
            f"(exit code {code}); output: {run.output()[-600:] or 'none'}",
            expected=f"process(msg) called once per record, so the planned crash during call {hold_at} happens",
            nudge="call process(msg) for every record, after inserting its row and before committing it.")
    return {}


def settle(run: ChildRun, db_path, stream: Stream, did: str, timeout: float = SETTLE_S,
           events: Path | None = None) -> Tally:
    """Let the sink run until the database holds every payment (or time is up), then stop it and
    return what the database holds once it has returned. A duplicate already decides the check, so
    after the first one the sink only gets DUPLICATE_GRACE_S more to fill in what is missing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.proc.poll() is None:
        tally = Tally(db_rows(db_path), stream.ids)
        if not tally.missing:
            break
        if tally.duplicated:
            deadline = min(deadline, time.monotonic() + DUPLICATE_GRACE_S)
        elif db_offsets(db_path, stream.topic) == stream.ends:
            # The sink says it has read every partition to its end, yet rows are missing: they will not come.
            deadline = min(deadline, time.monotonic() + CAUGHT_UP_GRACE_S)
        time.sleep(0.2)  # polling interval of a condition wait bounded by `deadline`
    run.stop()
    code = run.wait(STOP_S)
    if code is None:
        run.kill()
        explain(did=did + ", then made should_stop() return True",
                saw=f"run_sink had not returned {STOP_S:.0f}s later",
                expected="run_sink checks should_stop() at least once a second, closes its consumer and returns")
    explain_child_error(run, did)
    gap = stop_gap(events) if events is not None else None
    if gap is not None and gap > STOP_GAP_S:
        explain(did=did + ", then (no records left to read) made should_stop() return True",
                saw=f"run_sink went {gap:.1f}s without calling should_stop() while idle",
                expected=f"should_stop() checked at least once a second, even when no records arrive "
                f"(allowed: {STOP_GAP_S}s)", nudge="how long can one poll() wait when nothing arrives?",
                seen_in="the check's callbacks")
    return Tally(db_rows(db_path), stream.ids)
