"""Helpers for the kata-07 checks: real group members (stuck, slow, fast), a steady producer, and what
the broker says about a group's offsets, so the learner's numbers can be compared with it."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from grader.kit import QUIET, explain

MEMBER_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 50}
INTERVAL_S = 1.0  # what the checks pass to diagnose(): two samples one second apart


def produce_to_partitions(kafka, topic: str, counts: dict[int, int]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, **QUIET})
    for partition, count in counts.items():
        for n in range(count):
            producer.produce(topic, key=f"k{partition}", value=f"p{partition}-{n}", partition=partition)
    if producer.flush(30):
        raise KafkaException(f"the check's own records did not reach {topic}")


@dataclass
class PartitionView:
    committed: int | None
    start: int
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed if self.committed is not None else self.start)


class Broker:
    """The check's own view of a group's committed offsets and a topic's start/end offsets."""

    def __init__(self, kafka, topic: str, partitions: int):
        self.kafka, self.topic, self.partitions = kafka, topic, partitions
        self.reader = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": kafka.unique("watch"),
                                "enable.auto.commit": False, **QUIET})

    def view(self, group: str) -> dict[int, PartitionView]:
        committed = self.kafka.committed(group, self.topic)
        out = {}
        for p in range(self.partitions):
            low, high = self.reader.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10, cached=False)
            offset = committed.get(p, -1001)
            out[p] = PartitionView(offset if offset >= 0 else None, low, high)
        return out

    def members(self, group: str) -> int:
        desc = self.kafka.admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        return len(desc.members)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.close()


class Member:
    """A real member of the group: subscribes, reads, commits only what the check tells it to."""

    def __init__(self, kafka, topic: str, group: str):
        self.topic = topic
        self.consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group,
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "enable.auto.offset.store": False, **MEMBER_CONFIG, **QUIET})
        self._owned: set[int] = set()
        # Track the assignment from the callbacks: calling consumer methods from another thread
        # while the member's thread sits in poll() can block.
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.processed = 0
        self.commits = 0
        self.error: str | None = None

    def consume_exactly(self, per_partition: dict[int, int], timeout: float = 30.0) -> None:
        """Read the first k records of each partition, commit exactly those, then stop polling."""
        seen = dict.fromkeys(per_partition, 0)
        deadline = time.monotonic() + timeout
        while any(seen[p] < k for p, k in per_partition.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the check's member read only {seen} of {per_partition}")
            msg = self.consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            p = msg.partition()
            if seen.get(p, 0) < per_partition.get(p, 0):
                seen[p] += 1
                self.consumer.store_offsets(message=msg)
        self.consumer.commit(asynchronous=False)

    def run_in_background(self, per_second: float | None, commit: bool) -> None:
        """Poll all the time; process at most per_second records (None: as fast as it can)."""
        def loop() -> None:
            try:
                while not self._stop.is_set():
                    msg = self.consumer.poll(0.05)
                    if msg is None or msg.error():
                        continue
                    if per_second:
                        time.sleep(1.0 / per_second)  # the member's "work" on each record
                    self.processed += 1
                    if commit:
                        self.consumer.commit(message=msg, asynchronous=False)
                        self.commits += 1
            except Exception as exc:  # noqa: BLE001 - reported by the check
                self.error = f"{type(exc).__name__}: {exc}"
        self._thread = threading.Thread(target=loop, daemon=True, name="kata07-member")
        self._thread.start()

    def _on_assign(self, consumer, partitions) -> None:
        self._owned.update(tp.partition for tp in partitions)

    def _on_revoke(self, consumer, partitions) -> None:
        self._owned.difference_update(tp.partition for tp in partitions)

    def owned(self) -> int:
        return len(self._owned)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with contextlib.suppress(Exception):
            self.consumer.close()


class SteadyProducer:
    """Writes records round-robin over the partitions at a fixed rate until stopped."""

    def __init__(self, kafka, topic: str, partitions: int, per_second: float):
        self.producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 5, **QUIET})
        self.topic, self.partitions, self.per_second = topic, partitions, per_second
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kata07-producer")
        self._thread.start()

    def _loop(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.per_second) + 1
            while self.sent < due:
                self.producer.produce(self.topic, value=f"r{self.sent}", partition=self.sent % self.partitions)
                self.sent += 1
            self.producer.poll(0)
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.producer.flush(10)


def call_measure(impl, kafka, group: str, topic: str) -> dict:
    try:
        report = impl.measure_lag(kafka.bootstrap_servers, group, topic)
    except Exception as exc:
        explain(did=f"called measure_lag(bootstrap, {group!r}, {topic!r})",
                saw=f"it raised {type(exc).__name__}: {exc}", expected="a lag report")
    _check_shape(report, "measure_lag")
    return report


def call_diagnose(impl, kafka, group: str, topic: str) -> tuple[dict, float]:
    started = time.monotonic()
    try:
        result = impl.diagnose(kafka.bootstrap_servers, group, topic, INTERVAL_S)
    except Exception as exc:
        explain(did=f"called diagnose(bootstrap, {group!r}, {topic!r}, interval_s={INTERVAL_S})",
                saw=f"it raised {type(exc).__name__}: {exc}", expected="a diagnosis")
    elapsed = time.monotonic() - started
    if not isinstance(result, dict) or not {"status", "members", "uncommitted", "first", "second"} <= set(result):
        explain(did="called diagnose()", saw=f"it returned {result!r:.200}",
                expected='a dict with "status", "members", "uncommitted", "first" and "second"')
    _check_shape(result["first"], "diagnose()['first']")
    _check_shape(result["second"], "diagnose()['second']")
    return result, elapsed


def _check_shape(report, what: str) -> None:
    ok = isinstance(report, dict) and isinstance(report.get("partitions"), dict) and "total" in report
    if ok:
        for entry in report["partitions"].values():
            if not isinstance(entry, dict) or not {"committed", "start", "end", "lag"} <= set(entry):
                ok = False
    if not ok:
        explain(did=f"read what {what} returned", saw=f"{report!r:.200}",
                expected='{"partitions": {p: {"committed", "start", "end", "lag"}}, "total": int}')


def compare_with_broker(report: dict, broker: dict[int, PartitionView], did: str) -> None:
    """The learner's per-partition numbers and total must equal the broker's, exactly."""
    parts = report["partitions"]
    missing = sorted(set(broker) - set(parts))
    if missing:
        explain(did=did, saw=f"partitions {missing} are missing from the report (it has {sorted(parts)})",
                expected=f"an entry for every partition of the topic: {sorted(broker)}",
                nudge="a partition the group has never committed on still has records waiting; leaving it out "
                "hides exactly the backlog nobody is working on.")
    for p, want in sorted(broker.items()):
        got = parts[p]
        if got["committed"] != want.committed:
            explain(did=did, saw=f"partition {p}: your committed offset {got['committed']!r}; the broker holds "
                    f"{want.committed!r} for the group" + (" (None: never committed)" if want.committed is None
                                                           else ""),
                    expected="the group's committed offset, or None when it has none",
                    nudge="a partition without a commit has no offset at all; -1001 is a marker, not an offset."
                    if want.committed is None else
                    "the committed offset is stored by the broker for the group, whatever any consumer has read "
                    "or is reading right now.")
        if got["end"] != want.end or got["start"] != want.start:
            explain(did=did, saw=f"partition {p}: your start/end {got['start']}/{got['end']}; the broker's "
                    f"log start/high watermark {want.start}/{want.end}",
                    expected="the partition's log start offset and high watermark (the next offset to be written)")
        if got["lag"] != want.lag:
            explain(did=did, saw=f"partition {p}: your lag {got['lag']}; broker: committed {want.committed}, "
                    f"log start {want.start}, end {want.end}",
                    expected=f"lag {want.lag}",
                    nudge="lag counts the records the group still has to read: from where it would resume to the "
                    "end. Where does a group resume on a partition it never committed on, once the oldest records "
                    "have been deleted?")
    total = sum(v.lag for v in broker.values())
    if report["total"] != total:
        lags = [broker[p].lag for p in sorted(broker)]
        explain(did=did, saw=f"your total {report['total']}; per-partition lags {lags}",
                expected=f"total {total}",
                nudge="the group has to work through every partition's backlog. How do the partitions' lags add "
                "up to the group's?")


def within(report: dict, before: dict[int, PartitionView], after: dict[int, PartitionView], did: str) -> None:
    """For a moving group: every number lies between the broker's readings before and after the call."""
    parts = report["partitions"]
    for p in before:
        got = parts.get(p)
        if got is None:
            explain(did=did, saw=f"no entry for partition {p}", expected="an entry for every partition")
        lo, hi = before[p].committed, after[p].committed
        if got["committed"] is not None and lo is not None and not (lo <= got["committed"] <= hi):
            explain(did=did, saw=f"partition {p}: your committed offset {got['committed']}; the broker's committed "
                    f"offset went from {lo} to {hi} during the call",
                    expected="a committed offset within that range",
                    nudge="measure the group's committed offsets, not a consumer's own position.")
        if not before[p].end <= got["end"] <= after[p].end:
            explain(did=did, saw=f"partition {p}: your end offset {got['end']}; the broker's went from "
                    f"{before[p].end} to {after[p].end} during the call", expected="an end offset within that range")
        base = got["committed"] if got["committed"] is not None else got["start"]
        if got["lag"] != got["end"] - base:
            explain(did=did, saw=f"partition {p}: lag {got['lag']} with committed {got['committed']}, "
                    f"start {got['start']}, end {got['end']}", expected=f"lag {got['end'] - base}")
    total = sum(r["lag"] for r in parts.values())
    if report["total"] != total:
        explain(did=did, saw=f"your total {report['total']}; your per-partition lags add up to {total}",
                expected=f"total {total}",
                nudge="the group has to work through every partition's backlog.")
