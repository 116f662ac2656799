"""Data, producers and comparisons for the kata-10 checks (Part B: build_table)."""

import json
import threading
import time
from collections import Counter

from confluent_kafka import KafkaException, Producer, TopicPartition

from grader.kit import QUIET, explain

RETURN_WITHIN_S = 12.0  # the solution needs well under a second; a reader that cannot find the end never returns
DELETED_BEFORE = 10  # partition 3 of the placed topic starts here (delete_records)
# The checks' own writes keep their order even if a request is retried, without the half second an
# idempotent producer needs to get its producer id.
IN_ORDER = {"max.in.flight.requests.per.connection": 1, "linger.ms": 5}

# ---------------------------------------------------------------------- data


def table_events() -> list[tuple[str, str | None]]:
    """Profile updates: several versions per key, deletions, and a key that comes back after its deletion."""
    events: list[tuple[str, str | None]] = []
    users = [f"user-{n:02d}" for n in range(24)]
    for version in range(4):
        for n, user in enumerate(users):
            if version <= n % 4:
                events.append((user, json.dumps({"user": user, "version": version, "name": f"name-{n}-v{version}"})))
    for user in users[::5]:  # user-00, -05, -10, -15, -20 are deleted (user-00 after a single version)
        events.append((user, None))
    events.append(("user-10", json.dumps({"user": "user-10", "version": 9, "name": "back again"})))
    return events


def placed_events() -> dict[int, list[tuple[str, str | None, int]]]:
    """(key, value, timestamp ms) per partition of a 4-partition topic, each key in one partition.

    Partition 0: most keys, with deletions, a key that returns, non-ASCII keys and values, and
    timestamps that go *backwards* for some keys (a producer's clock jumped): the last written
    record wins, not the newest timestamp. Partition 1: a few keys; the check appends its last
    records in a transaction, so its end offset is a commit marker, not a record. Partition 2:
    empty. Partition 3: one hot key with many versions and a key whose last value is "" (an
    empty value is a value, not a tombstone); the check deletes its first DELETED_BEFORE records
    (superseded versions), so it no longer starts at offset 0. Every partition's first and last
    record matter to the table.
    """
    base = int(time.time() * 1000) - 3_600_000
    p0: list[tuple[str, str | None, int]] = []
    keys0 = [f"user-{n:02d}" for n in range(12)] + ["Zoë", "東京"]
    for version in range(3):
        for n, key in enumerate(keys0):
            if version <= n % 3:
                skew = -version * 60_000 if n % 2 else version * 1000  # odd keys: later versions, older stamps
                p0.append((key, f"{key}·v{version}·ünïcode", base + 10 * len(p0) + skew))
    p0.append(("never-written", None, base + 10 * len(p0)))  # a tombstone whose value compaction already removed
    for key in ("user-00", "user-04", "user-07", "Zoë"):
        p0.append((key, None, base + 10 * len(p0)))
    p0.append(("user-04", "user-04·back again", base + 10 * len(p0)))
    p0.append(("user-11", "user-11·final", base - 7_200_000))  # last record of p0: a new value, an old stamp
    p1 = [("acct-9", "acct-9·only", base)] + [(f"acct-{n}", f"acct-{n}·v0", base + n) for n in range(3)]
    p3 = [("counter", str(n), base + n) for n in range(30)] + [("blank", "not blank yet", base + 40),
                                                            ("blank", "", base + 41), ("counter", "30", base + 42)]
    return {0: p0, 1: p1, 2: [], 3: p3}


def transactional_tail() -> list[tuple[str, str | None, int]]:
    """Partition 1's last records, written in one committed transaction."""
    now = int(time.time() * 1000)
    return [("acct-0", None, now), ("acct-1", "acct-1·v1", now), ("acct-2", "acct-2·v1", now)]


# Written to partition 1 in a transaction that is aborted, before its committed tail: these values were
# never written as far as any table is concerned (a read_uncommitted reader sees them anyway).
ABORTED = [("acct-9", "acct-9·aborted", 0), ("ghost", "ghost·aborted", 0)]


def check_no_aborted(did: str, got: dict) -> None:
    """No value of the aborted transaction may be in the table."""
    leaked = sorted(k for k, v, _ in ABORTED if k in got and got[k] == v)
    if leaked:
        k = leaked[0]
        explain(did=did + f" (partition 1 also holds an aborted transaction writing {[k for k, *_ in ABORTED]})",
                saw=f"{k!r} -> {got[k]!r}, a value of the aborted transaction", seen_in="your function's return value",
                expected="no value of an aborted transaction: it was never written",
                nudge="aborted records stay in the log, marked aborted; a read_uncommitted consumer hands them out. "
                "Which isolation.level does your consumer read with?")


def replay(events) -> dict[str, str]:
    """What a table must hold: the last value per key, tombstones removing the key."""
    table: dict[str, str] = {}
    for key, value, *_ in events:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


# ---------------------------------------------------------------------- producing


def produce_placed(kafka, topic: str, placed: dict, txn_partition: int, tail: list) -> None:
    """Write each partition's records where placed says, then ABORTED to txn_partition in a transaction that
    is aborted, then `tail` there in one that commits."""
    producer = kafka.producer(**IN_ORDER)
    for partition, events in placed.items():
        for key, value, ts in events:
            producer.produce(topic, key=key.encode(), value=None if value is None else value.encode(),
                             partition=partition, timestamp=ts)
    if producer.flush(30):
        raise KafkaException(f"test records were not delivered to {topic}")
    txn = Producer({"bootstrap.servers": kafka.bootstrap_servers, **QUIET,
                    "transactional.id": kafka.unique("changelog-writer")})
    txn.init_transactions(30)
    txn.begin_transaction()
    for key, value, _ in ABORTED:
        txn.produce(topic, key=key.encode(), value=value.encode(), partition=txn_partition)
    txn.flush(30)  # on the broker, then aborted: in the log, marked aborted
    txn.abort_transaction(30)
    txn.begin_transaction()
    for key, value, ts in tail:
        txn.produce(topic, key=key.encode(), value=None if value is None else value.encode(),
                    partition=txn_partition, timestamp=ts)
    txn.commit_transaction(30)
    # Superseded versions of the hot key go, as retention or compaction would remove them: the
    # partition's beginning is now its log start offset, not offset 0.
    deleted = kafka.admin.delete_records([TopicPartition(topic, 3, DELETED_BEFORE)])
    for future in deleted.values():
        future.result(timeout=30)


class Writer(threading.Thread):
    """Keeps appending records of keys `live-*` to every partition until stopped: a topic that keeps growing."""

    def __init__(self, kafka, topic: str, partitions: int):
        super().__init__(daemon=True)
        self.producer = kafka.producer(**{"linger.ms": 0})
        self.topic, self.partitions = topic, partitions
        self.stopped = threading.Event()
        self.sent = 0

    def run(self) -> None:
        deadline = time.monotonic() + RETURN_WITHIN_S + 5
        while not self.stopped.is_set() and time.monotonic() < deadline:
            for p in range(self.partitions):
                self.producer.produce(self.topic, key=f"live-{p}".encode(), value=str(self.sent).encode(),
                                      partition=p)
            self.sent += 1
            self.producer.poll(0)
            self.stopped.wait(0.02)
        self.producer.flush(10)

    def stop(self) -> None:
        self.stopped.set()
        self.join(15)


# ---------------------------------------------------------------------- calling the learner


HANG_NUDGE = ("what tells you a partition is done? An empty partition, a topic whose end offset is a transaction "
              "marker rather than a record, offsets with gaps after compaction, and a topic someone keeps writing "
              "to all break 'wait for a record at offset end-1', 'count records' and 'wait until nothing arrives'.")


def call_build_table(kafka, impl, topic: str, did: str, nudge_raise: str, within: float = RETURN_WITHIN_S,
                     nudge_hang: str = HANG_NUDGE) -> dict:
    """build_table(bootstrap, topic) with a deadline: a reader that never finds the end fails, it does not hang."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["table"] = impl.build_table(kafka.bootstrap_servers, topic)
        except Exception as exc:  # noqa: BLE001 - reported below in the learner's terms
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    started = time.monotonic()
    worker = threading.Thread(target=target, daemon=True)  # left behind if it never returns
    worker.start()
    worker.join(within)
    if worker.is_alive():
        explain(did=did, saw=f"build_table had not returned after {within:.0f}s (it takes well under a second "
                "when it stops at the end)",
                expected="it to stop once every partition's position reached the end offset the partition had "
                "when the call started", seen_in="your function",
                nudge=nudge_hang)
    if "error" in outcome:
        explain(did=did, saw=f"it raised {outcome['error']} after {time.monotonic() - started:.1f}s",
                expected="a dict key -> latest value", seen_in="your function", nudge=nudge_raise)
    table = outcome.get("table")
    if not isinstance(table, dict):
        explain(did=did, saw=f"it returned {type(table).__name__}", expected="a dict key -> latest value",
                seen_in="your function's return value")
    return table


# ---------------------------------------------------------------------- comparing


def compare(did: str, got: dict, want: dict, deleted: set[str], values_only: bool = False,
            ignore=lambda key: False) -> None:
    """Fail on the first difference, deleted keys first; values_only compares only the live keys' values."""
    seen_in = "your function's return value"
    odd = [k for k in got if not isinstance(k, str)] + [k for k, v in got.items() if not isinstance(v, str)]
    if odd:
        explain(did=did, saw=f"keys or values that are not str, e.g. {odd[0]!r} -> {got[odd[0]]!r}"
                if odd[0] in got else f"keys or values that are not str, e.g. {odd[0]!r}",
                expected="keys and values decoded from UTF-8 to str", seen_in=seen_in,
                nudge="msg.key() and msg.value() are bytes (or None).")
    stale_deleted = sorted(k for k in deleted if k in got)
    if stale_deleted:
        k = stale_deleted[0]
        explain(did=did, saw=f"{len(stale_deleted)} deleted keys still in the table, e.g. {k!r} -> {got[k]!r}",
                expected=f"{k!r} absent: its last record is a tombstone (value None)", seen_in=seen_in,
                nudge="how does a producer delete a key from a compacted topic, and how should a reader react?")
    missing = sorted(set(want) - set(got))
    if missing:
        explain(did=did, saw=f"{len(got)} keys; missing {missing[:4]}", expected=f"{len(want)} keys",
                seen_in=seen_in,
                nudge="read every partition from its beginning (not always offset 0: older records may have "
                "been deleted) up to its end (its last record included). A key deleted earlier can be written "
                "again; an empty value is a value, not a tombstone.")
    wrong = sorted(k for k in want if got.get(k) != want[k])
    if wrong:
        k = wrong[0]
        explain(did=did, saw=f"{len(wrong)} keys with another value, e.g. {k!r} -> {got.get(k)!r}",
                expected=f"{k!r} -> {want[k]!r} (the last value written for that key)", seen_in=seen_in,
                nudge="a key's records are kept in the order they were written (their offsets), whatever their "
                "timestamps say. Which one is current? Decode as UTF-8.")
    extra = sorted(k for k in set(got) - set(want) if not ignore(k))
    if extra and not values_only:
        explain(did=did, saw=f"keys nobody wrote a live value for: {extra[:4]}",
                expected="only keys whose last record has a value", seen_in=seen_in,
                nudge="some records in a compacted topic have no value at all.")


def superseded(kafka, topic: str, keys: set[str]) -> int:
    """How many records on the broker are older versions of a key (compaction removes these)."""
    counts = Counter(r.key_text for r in kafka.read_all(topic, timeout=10) if r.key_text in keys)
    return sum(n - 1 for n in counts.values())
