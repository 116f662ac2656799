"""Helpers for the kata-07 checks: real group members (stuck, slow, fast), a steady producer, and what
the broker says about a group's offsets, so the learner's numbers can be compared with it."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from grader.kit import QUIET, explain, pictures

MEMBER_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 50}
# diagnose() must sleep interval_s between its samples: not less (the checks time the call and, while
# records arrive, read from the samples' end offsets how far apart they were), and not some other fixed
# time (the checks pass different intervals and allow only this much on top for the broker round trips).
OVERHEAD_S = 3.0


def commit_as_group(kafka, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for a group that has no live member (the way a stopped consumer left them)."""
    consumer = kafka.consumer(group=group)
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()
        kafka._clients.remove(consumer)


def delete_before(kafka, topic: str, partition: int, offset: int) -> None:
    """What retention does: the partition's log now starts at `offset`."""
    tp = TopicPartition(topic, partition, offset)
    kafka.admin.delete_records([tp])[tp].result(timeout=15)


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

    def commit(self, offsets: dict[int, int]) -> None:
        """Commit these offsets as the member (an offset of 0 is a commit too)."""
        self.consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                             asynchronous=False)

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
    """Writes records round-robin over the partitions at a fixed rate until stopped, and notes when each
    one was written and acknowledged: the end offsets of two samples then say how far apart they were."""

    def __init__(self, kafka, topic: str, partitions: int, per_second: float):
        self.producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 5, **QUIET})
        self.topic, self.partitions, self.per_second = topic, partitions, per_second
        self._stop = threading.Event()
        self.sent = 0
        self._written: dict[int, float] = {}  # record number -> monotonic time of produce()
        self.acked: dict[tuple[int, int], tuple[float, float]] = {}  # (partition, offset) -> (written, acked)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kata07-producer")
        self._thread.start()

    def _acked(self, err, msg) -> None:
        if err is None:
            written = self._written[int(msg.value()[1:])]
            self.acked[(msg.partition(), msg.offset())] = (written, time.monotonic())

    def _loop(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.per_second) + 1
            while self.sent < due:
                self._written[self.sent] = time.monotonic()
                self.producer.produce(self.topic, value=f"r{self.sent}", partition=self.sent % self.partitions,
                                      on_delivery=self._acked)
                self.sent += 1
            self.producer.poll(0)
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.producer.flush(10)

    def seconds_between(self, first: dict, second: dict) -> float:
        """A lower bound on the time between two samples, from their end offsets. Call after close().

        A sample showing end e was taken before record e was acknowledged, and one showing end e2 after
        record e2 - 1 was written: so the second came at least written(e2 - 1) - acked(e1) after the
        first. A stalled producer can make that bound loose, so the records between the samples, at
        the producer's rate, are a second bound; the larger one counts."""
        best, between = 0.0, 0
        for p in range(self.partitions):
            e1, e2 = first["partitions"][p]["end"], second["partitions"][p]["end"]
            between += e2 - e1
            if e2 - 1 >= e1 and (p, e1) in self.acked and (p, e2 - 1) in self.acked:
                best = max(best, self.acked[(p, e2 - 1)][0] - self.acked[(p, e1)][1])
        return max(best, between / self.per_second)


def call_measure(impl, kafka, group: str, topic: str) -> dict:
    try:
        report = impl.measure_lag(kafka.bootstrap_servers, group, topic)
    except Exception as exc:
        explain(did=f"called measure_lag(bootstrap, {group!r}, {topic!r})",
                saw=f"it raised {type(exc).__name__}: {exc}", expected="a lag report",
                seen_in="your function")
    _check_shape(report, "measure_lag")
    return report


def call_diagnose(impl, kafka, group: str, topic: str, interval_s: float) -> dict:
    """diagnose(), which must take interval_s (and not much more) between its samples."""
    did = f"called diagnose(bootstrap, {group!r}, {topic!r}, interval_s={interval_s})"
    started = time.monotonic()
    try:
        result = impl.diagnose(kafka.bootstrap_servers, group, topic, interval_s)
    except Exception as exc:
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="a diagnosis",
                seen_in="your function")
    elapsed = time.monotonic() - started
    if not isinstance(result, dict) or not {"status", "members", "uncommitted", "first", "second"} <= set(result):
        explain(did=did, saw=f"it returned {result!r:.200}", seen_in="your function's return value",
                expected='a dict with "status", "members", "uncommitted", "first" and "second"')
    _check_shape(result["first"], "diagnose()['first']")
    _check_shape(result["second"], "diagnose()['second']")
    if elapsed < interval_s:
        explain(did=did, saw=f"it returned after {elapsed:.2f}s", seen_in="the check's clock",
                expected=f"at least {interval_s}s: the two samples are taken interval_s apart",
                nudge="which unit does time.sleep() take, and did you sleep for the interval you were given?")
    if elapsed > interval_s + OVERHEAD_S:
        explain(did=did, saw=f"it returned after {elapsed:.2f}s", seen_in="the check's clock",
                expected=f"about {interval_s}s (the interval) plus a few broker round trips",
                nudge="is the wait between the samples the interval_s you were given, and nothing else?")
    return result


def check_verdict(result: dict, did: str, status: str, members: int, uncommitted: list[int], nudge: str) -> None:
    """The diagnosis' three plain fields, exactly."""
    got = (result["status"], result["members"], result["uncommitted"])
    if got != (status, members, uncommitted):
        explain(did=did, seen_in="your function's return value",
                saw=(f"status {result['status']!r}, members {result['members']!r}, uncommitted "
                     f"{result['uncommitted']!r}, total lag {result['first']['total']} then "
                     f"{result['second']['total']}"),
                expected=f"status {status!r}, members {members}, uncommitted {uncommitted}", nudge=nudge)


def _check_shape(report, what: str) -> None:
    ok = isinstance(report, dict) and isinstance(report.get("partitions"), dict) and "total" in report
    if ok:
        for entry in report["partitions"].values():
            if not isinstance(entry, dict) or not {"committed", "start", "end", "lag"} <= set(entry):
                ok = False
    if not ok:
        explain(did=f"read what {what} returned", saw=f"{report!r:.200}",
                expected='{"partitions": {p: {"committed", "start", "end", "lag"}}, "total": int}')


SEEN = "your report, next to the broker's numbers"


def _lag_pictures(parts: dict, broker: dict[int, PartitionView], bad: int | None) -> None:
    """The broker's view (bars: read and committed, then the lag as pale squares) and yours beside it."""
    pictures.attach(pictures.offset_bars(
        "The broker's view of each partition: its log from log start to end, and the group's committed offset",
        [pictures.bar(p, end=v.end, log_start=v.start, committed=v.committed, start=v.committed or v.start)
         for p, v in sorted(broker.items())][:16],
        unread="the lag: records the group has still to read", before="behind the committed offset"))
    rows, bad_rows = [], []
    for i, (p, v) in enumerate(sorted(broker.items())[:60]):
        got = parts.get(p, {})
        rows.append([p, f"{got.get('committed', 'missing')} / {v.committed}", f"{got.get('start')} / {v.start}",
                     f"{got.get('end')} / {v.end}", f"{got.get('lag')} / {v.lag}"])
        if p == bad:
            bad_rows.append(i)
    pictures.attach(pictures.table("Your report / the broker, per partition",
                                   ["partition", "committed", "log start", "end", "lag"], rows, bad_rows))


def compare_with_broker(report: dict, broker: dict[int, PartitionView], did: str) -> None:
    """The learner's per-partition numbers and total must equal the broker's, exactly."""
    parts = report["partitions"]
    missing = sorted(set(broker) - set(parts), key=str)
    extra = sorted(set(parts) - set(broker), key=str)
    if missing:
        explain(did=did, seen_in=SEEN, saw=f"partitions {missing} are missing from the report (it has "
                f"{sorted(parts, key=str)})",
                expected=f"an entry for every partition of the topic, keyed by its number (int): {sorted(broker)}",
                nudge="a partition the group has never committed on still has records waiting; leaving it out "
                "hides exactly the backlog nobody is working on.")
    if extra:
        explain(did=did, seen_in=SEEN, saw=f"your report has partitions {extra}",
                expected=f"exactly the topic's partitions: {sorted(broker)}")
    for p, want in sorted(broker.items()):
        got = parts[p]
        if got["committed"] != want.committed or got["end"] != want.end or got["start"] != want.start or \
                got["lag"] != want.lag:
            _lag_pictures(parts, broker, p)
        if got["committed"] != want.committed:
            explain(did=did, seen_in=SEEN,
                    saw=f"partition {p}: your committed offset {got['committed']!r}; the broker holds "
                    f"{want.committed!r} for the group" + (" (None: never committed)" if want.committed is None
                                                           else ""),
                    expected="the group's committed offset, or None when it has none",
                    nudge="a partition without a commit has no offset at all; -1001 is a marker, not an offset."
                    if want.committed is None else
                    "the committed offset is stored by the broker for the group, whatever any consumer has read "
                    "or is reading right now. An offset of 0 is a commit too.")
        if got["end"] != want.end or got["start"] != want.start:
            explain(did=did, seen_in=SEEN,
                    saw=f"partition {p}: your start/end {got['start']}/{got['end']}; the broker's "
                    f"log start/high watermark {want.start}/{want.end}",
                    expected="the partition's log start offset and high watermark (the next offset to be written)",
                    nudge="the high watermark is the offset the next record will get, one past the last record.")
        if got["lag"] != want.lag:
            explain(did=did, seen_in=SEEN,
                    saw=f"partition {p}: your lag {got['lag']}; broker: committed {want.committed}, "
                    f"log start {want.start}, end {want.end}",
                    expected=f"lag {want.lag}",
                    nudge="lag counts the records the group still has to read: from where it would resume to the "
                    "end. Where does a group resume on a partition it never committed on, once the oldest records "
                    "have been deleted?")
    total = sum(v.lag for v in broker.values())
    if report["total"] != total:
        lags = [broker[p].lag for p in sorted(broker)]
        _lag_pictures(parts, broker, None)
        explain(did=did, seen_in=SEEN, saw=f"your total {report['total']}; per-partition lags {lags}",
                expected=f"total {total}",
                nudge="the group has to work through every partition's backlog. How do the partitions' lags add "
                "up to the group's?")


def within(report: dict, before: dict[int, PartitionView], after: dict[int, PartitionView], did: str) -> None:
    """For a moving group: every number lies between the broker's readings before and after the call."""
    parts = report["partitions"]
    for p in before:
        got = parts.get(p)
        if got is None:
            explain(did=did, saw=f"no entry for partition {p} (your report has {sorted(parts)})",
                    expected="an entry for every partition", seen_in=SEEN)
        lo, hi = before[p].committed, after[p].committed
        c = got["committed"]
        if (c is None and lo is not None) or (c is not None and (hi is None or not (lo or 0) <= c <= hi)):
            explain(did=did, saw=f"partition {p}: your committed offset {got['committed']}; the broker's committed "
                    f"offset went from {lo} to {hi} during the call", seen_in=SEEN,
                    expected="a committed offset within that range (None only while there is none)",
                    nudge="measure the group's committed offsets, not a consumer's own position.")
        if got["start"] != before[p].start or not before[p].end <= got["end"] <= after[p].end:
            explain(did=did, saw=f"partition {p}: your start/end {got['start']}/{got['end']}; the broker's log start "
                    f"was {before[p].start} and its end went from {before[p].end} to {after[p].end} during the call",
                    expected="the log start, and an end offset within that range", seen_in=SEEN)
        base = got["committed"] if got["committed"] is not None else got["start"]
        if got["lag"] != got["end"] - base:
            explain(did=did, saw=f"partition {p}: lag {got['lag']} with committed {got['committed']}, "
                    f"start {got['start']}, end {got['end']}", expected=f"lag {got['end'] - base}", seen_in=SEEN)
    total = sum(r["lag"] for r in parts.values())
    if report["total"] != total:
        explain(did=did, saw=f"your total {report['total']}; your per-partition lags add up to {total}",
                expected=f"total {total}", seen_in=SEEN,
                nudge="the group has to work through every partition's backlog.")
