"""Helpers for the kata-03 checks: drive the learner's publisher, and ask the broker which producers wrote.

The Python client never shows a record batch's producer id or sequence number, so
`describe_producers` speaks the Kafka protocol itself: one DescribeProducers request (API key
61, KIP-664, the request behind `kafka-transactions.sh describe-producers`) to the partition's
leader. The broker answers with the producers it tracks for that partition: only idempotent (or
transactional) producers have an id and sequence numbers, so a plain producer leaves no entry.
"""

from __future__ import annotations

import contextlib
import io
import socket
import statistics
import struct
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from grader.kit import QUIET, explain
from grader.kit.rawsocket import kafka_socket

DESCRIBE_PRODUCERS = 61  # api key; version 0 is "flexible" (compact strings, tagged fields)


@dataclass
class ActiveProducer:
    producer_id: int
    epoch: int
    last_sequence: int


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _compact_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return _uvarint(len(data) + 1) + data


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("the broker closed the connection mid-response")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes):
        self.buf = io.BytesIO(data)

    def _take(self, fmt: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.buf.read(size))[0]

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def int64(self) -> int:
        return self._take(">q")

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.buf.read(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.buf.read(n - 1).decode("utf-8", "replace")

    def count(self) -> int:  # compact array length
        return self.uvarint() - 1

    def tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.buf.read(self.uvarint())


def describe_producers(host: str, port: int, topic: str, partitions: list[int],
                       timeout: float = 10.0) -> dict[int, list[ActiveProducer]]:
    """Active producers per partition, as the partition leader at host:port tracks them."""
    body = (_uvarint(2) + _compact_string(topic) + _uvarint(len(partitions) + 1)
            + b"".join(struct.pack(">i", p) for p in partitions) + b"\x00" + b"\x00")
    client_id = b"kata03-checks"
    header = struct.pack(">hhih", DESCRIBE_PRODUCERS, 0, 3, len(client_id)) + client_id + b"\x00"
    request = header + body
    with kafka_socket(host, port, timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        r = _Reader(_recv_exactly(sock, size))
    r.int32()  # correlation id
    r.tags()
    r.int32()  # throttle time
    out: dict[int, list[ActiveProducer]] = {}
    for _ in range(r.count()):
        r.compact_string()
        for _ in range(r.count()):
            partition, error, message = r.int32(), r.int16(), r.compact_string()
            producers = []
            for _ in range(r.count()):
                pid, epoch, last_seq = r.int64(), r.int32(), r.int32()
                r.int64(), r.int32(), r.int64()  # last timestamp, coordinator epoch, txn start offset
                r.tags()
                producers.append(ActiveProducer(pid, epoch, last_seq))
            r.tags()
            if error:
                raise KafkaException(f"DescribeProducers for {topic}[{partition}] failed: error {error} {message}")
            out[partition] = producers
        r.tags()
    return out


def producers_on(kafka, topic: str) -> dict[int, list[ActiveProducer]]:
    """Ask each partition's leader which producers it tracks for that partition."""
    md = kafka.admin.list_topics(topic, timeout=10)
    by_leader: dict[int, list[int]] = {}
    for p, pmd in md.topics[topic].partitions.items():
        by_leader.setdefault(pmd.leader, []).append(p)
    out: dict[int, list[ActiveProducer]] = {}
    for leader, parts in by_leader.items():
        broker = md.brokers[leader]
        out.update(describe_producers(broker.host, broker.port, topic, sorted(parts)))
    return out


class Watermarks:
    """A reader that is connected before the learner's close() runs, so it can look at once afterwards."""

    def __init__(self, kafka, topic: str, partitions: int):
        self.topic, self.partitions = topic, partitions
        self.consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": kafka.unique("hwm"),
                                  "enable.auto.commit": False, **QUIET})
        self.total()  # connect and learn the leaders now, not after close()

    def total(self) -> int:
        ends = 0
        for p in range(self.partitions):
            for attempt in range(50):
                try:
                    ends += self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5,
                                                                cached=False)[1]
                    break
                except KafkaException:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
        return ends

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()


PUBLISH_AT_ONCE_S = 0.75  # produce() + poll(0) take microseconds; a wait for a delivery takes far longer
# The typical call, not only the slowest: through the learner host a call that only queues takes well
# under a millisecond (median 0.2 ms measured on a loaded 2-core machine), while one that waits on the
# client at all (poll() with a timeout, a short flush()) takes milliseconds each, which the 0.75 s bound
# on the slowest call never sees.
PUBLISH_MEDIAN_S = 0.005
CLOSE_SLACK_S = 6.0  # how long after its own timeout (or the delivery timeout) close() may take to return


def _in_thread(fn, deadline: float):
    """Run learner code in a worker thread: (result, exception, elapsed), or None if it is still running
    at the deadline (a hung call must fail this check, not stall the whole run until its timeout)."""
    box: dict = {}

    def run():
        started = time.monotonic()
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller, in the learner's terms
            box["exc"] = exc
        box["elapsed"] = time.monotonic() - started

    worker = threading.Thread(target=run, daemon=True, name="kata03-learner")
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        return None
    return box.get("result"), box.get("exc"), box["elapsed"]


def open_publisher(impl, bootstrap_servers: str, config: dict):
    try:
        return impl.ReliablePublisher(bootstrap_servers, config=dict(config))
    except Exception as exc:
        explain(did=f"created ReliablePublisher(bootstrap, config={config})",
                saw=f"it raised {type(exc).__name__}: {exc}",
                expected="a publisher ready to take records", seen_in="your code",
                nudge="librdkafka refuses contradictory settings at construction time (e.g. idempotence with "
                "acks other than all). Which settings does an idempotent producer need?")
        raise  # unreachable: explain() fails the check


def publish_all(publisher, records: list[tuple[str, str, str | bytes]], deadline: float = 15.0,
                at_once: bool = True) -> None:
    """publish() every record, timing each call: publish() must return at once, whatever the record
    (unless at_once is False: with a full local queue it may wait for room)."""
    timings: list[float] = []

    def run():
        for topic, key, value in records:
            started = time.monotonic()
            try:
                publisher.publish(topic, key, value)
            finally:
                timings.append(time.monotonic() - started)
            if at_once and len(timings) >= 40 and statistics.median(timings) > PUBLISH_MEDIAN_S:
                return  # the verdict is in (below): no need to wait for the rest

    outcome = _in_thread(run, deadline)
    if outcome is None:
        topic, key, _ = records[min(len(timings), len(records) - 1)]
        explain(did=f"called publish() for {len(records)} records", seen_in="your code",
                saw=f"after {deadline:.0f} s, publish({topic!r}, {key!r}, …) (call {len(timings) + 1}) had not "
                "returned", expected="each publish() to queue its record and return at once",
                nudge="is publish() waiting for something that may never come (a delivery, room in a queue "
                "that nobody empties), or looping without end?")
    _, exc, _ = outcome
    if exc is not None:
        topic, key, value = records[len(timings) - 1]
        explain(did=f"called publish({topic!r}, {key!r}, <{len(value)} {type(value).__name__}>)",
                saw=f"it raised {type(exc).__name__}: {exc}", seen_in="your code",
                expected="publish() queues the record and returns; delivery problems are reported by close()",
                nudge="a delivery failure is only known later, in a delivery report, and a full local queue is "
                "not a failure: serve reports (which frees room) and try again. publish() neither raises "
                "because of a delivery nor drops the record.")
    slowest = max(range(len(timings)), key=timings.__getitem__)
    typical = statistics.median(timings)
    if at_once and typical > PUBLISH_MEDIAN_S:
        explain(did=f"called publish() for {len(timings)} records and timed each call", seen_in="your code",
                saw=f"half of the calls took {typical * 1000:.1f} ms or more (the slowest "
                f"{timings[slowest] * 1000:.0f} ms)",
                expected=f"publish() to queue its record and return at once: well under {PUBLISH_MEDIAN_S * 1000:.0f} "
                "ms a call, as produce() and poll(0) take",
                nudge="does publish() wait on the client each time (poll() with a timeout, flush() with a short "
                "one)? Waiting there makes every caller pay for it; serve delivery reports with poll(0).")
    if at_once and timings[slowest] > PUBLISH_AT_ONCE_S:
        topic, key, _ = records[slowest]
        explain(did=f"called publish() for {len(records)} records and timed each call", seen_in="your code",
                saw=f"publish({topic!r}, {key!r}, …) took {timings[slowest]:.2f} s",
                expected=f"every publish() to return at once (well under {PUBLISH_AT_ONCE_S} s)",
                nudge="publish() only queues the record. Waiting for its delivery (flush(), or poll() with a "
                "timeout) there makes every caller wait on the broker, and on a record that can never be "
                "delivered it waits for the whole delivery timeout.")


def close_publisher(publisher, timeout: float | None, bound: float) -> tuple[list, float]:
    """close(timeout) (close() with its default when timeout is None); it must return within `bound` s."""
    shown = "close()" if timeout is None else f"close({timeout})"
    outcome = _in_thread(publisher.close if timeout is None else lambda: publisher.close(timeout), bound)
    if outcome is None:
        explain(did=f"called {shown}", seen_in="your code", saw=f"it had not returned after {bound:.0f} s",
                expected=f"close() to return within {bound:.0f} s here: as soon as every record has its "
                "delivery report, and never much later than its timeout",
                nudge="waiting for the producer to drain takes a timeout, and ends early when it has drained. "
                "Which timeout does your close() wait for, and does it use the caller's settings "
                "(message.timeout.ms in config) at all?")
    failures, exc, elapsed = outcome
    if exc is not None:
        explain(did=f"called {shown}", saw=f"it raised {type(exc).__name__}: {exc}", seen_in="your code",
                expected="close() returns the list of records that could not be delivered (empty when all were)",
                nudge="the contract reports failures as close()'s return value, not as an exception.")
    if not isinstance(failures, list | tuple):
        explain(did=f"called {shown}", saw=f"it returned {failures!r:.120}", seen_in="your code",
                expected="a list of (topic, key, reason) tuples, [] when everything was delivered",
                nudge="close() is the one place the caller learns what did not arrive.")
    return list(failures), elapsed


def failed_pairs(failures: list) -> list[tuple[str, str]]:
    """(topic, key) of each reported failure, after checking the entry is (str, str, non-empty str)."""
    pairs = []
    for item in failures:
        ok = isinstance(item, list | tuple) and len(item) == 3 and all(isinstance(v, str) for v in item)
        if not ok or not item[2].strip():
            explain(did="read the list close() returned", saw=f"an entry {item!r:.160}", seen_in="your code",
                    expected="each entry a (topic, key, reason) tuple of texts: the key as the str given to "
                    "publish() (not bytes), the reason non-empty (the delivery report's error as text)",
                    nudge="whoever handles the failure needs the record's topic and key as they gave them, and why "
                    "it failed.")
        pairs.append((item[0], item[1]))
    return pairs
