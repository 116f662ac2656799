"""Helpers for the kata-21 checks: a paced event stream that breaks the network at exact points of
its own progress, and what the brokers hold (asked directly, not through the fault proxies)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

QUIET = {"log_level": 0}


class Brokers:
    """The cluster as the check sees it: straight to the brokers' own ports, never through a proxy."""

    def __init__(self, cluster):
        self.cluster = cluster
        # The brokers' inter-broker listener: its metadata names the brokers' own ports, so this client
        # never goes through a proxy (the client listener advertises the proxies, even to cluster.admin()).
        direct = ",".join(f"127.0.0.1:{cluster._node(n)['broker_port']}" for n in cluster.node_ids)
        self.admin = AdminClient({"bootstrap.servers": direct, **QUIET})
        # read_uncommitted: the high watermark counts every replicated record, whether or not it belongs to a
        # transaction that is still open (read_committed would stop at the last stable offset, and progress
        # of a producer that wraps the stream in a transaction would never show).
        self._reader = Consumer({"bootstrap.servers": direct, "group.id": "kata21-watermarks",
                                 "enable.auto.commit": False, "isolation.level": "read_uncommitted", **QUIET})
        # read_committed: its end offset is the last stable offset, which stops at an open transaction.
        self._stable_reader = Consumer({"bootstrap.servers": direct, "group.id": "kata21-watermarks",
                                        "enable.auto.commit": False, "isolation.level": "read_committed", **QUIET})

    def close(self) -> None:
        for reader in (self._reader, self._stable_reader):
            with contextlib.suppress(Exception):
                reader.close()

    def settled(self, topic: str, partitions: int) -> bool:
        """No transaction is open on the topic: every partition's last stable offset has reached its high
        watermark. The coordinator writes commit markers just after commit_transaction() returns, so a
        read_committed reader started at once could miss a committed partition."""
        for p in range(partitions):
            tp = TopicPartition(topic, p)
            stable = self._stable_reader.get_watermark_offsets(tp, timeout=5, cached=False)[1]
            if stable < self._reader.get_watermark_offsets(tp, timeout=5, cached=False)[1]:
                return False
        return True

    def partitions(self, topic: str) -> dict:
        md = self.admin.list_topics(topic, timeout=10).topics[topic]
        return md.partitions

    def written(self, topic: str, partitions: int) -> int:
        """Records the cluster has replicated (sum of high watermarks), whoever acknowledged them and whether or
        not their transaction (if any) is committed yet. Transaction markers count too."""
        total = 0
        for p in range(partitions):
            total += self._reader.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
        return total

    def all_in_sync(self, topic: str, replicas: int = 3) -> bool:
        return all(len(p.isrs) == replicas and p.leader >= 0 for p in self.partitions(topic).values())

    def heal(self) -> None:
        """Every proxy back to pass and every broker registered: one cluster serves every check of a run."""
        for proxy in self.cluster.proxies.values():
            proxy.set_mode("pass")
        until(lambda: len(self.admin.list_topics(timeout=5).brokers) == len(self.cluster.node_ids), 60,
              "all brokers to be registered")


def until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> bool:
    """Poll until condition() holds; False at the deadline (the caller explains)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except KafkaException:
            pass
        time.sleep(interval)
    return False


class FaultyStream:
    """The events the learner's function iterates over, with a network fault at a fixed point of the stream.

    1. `before` events flow normally; the stream then waits until the cluster has committed all of them.
    2. Every proxy starts dropping the brokers' responses (requests still reach the brokers) and the
       stream goes on. A watcher waits until one more record is written than when the drop began: a write
       the broker applied but whose acknowledgement never reached the producer.
    3. The watcher then cuts every client connection and lets the proxies pass again: the producer must
       resend what it never heard about. The rest of the events flow.
    4. The last event goes out over a slow network (every chunk held `tail_delay_s`): a function that returns
       without waiting for its deliveries returns before the cluster holds that event, whatever the timing of
       the producer's batching on this machine (without it, the last batch sometimes beats the return).
    The stream never raises into the learner's code: a problem ends it early and is kept in `problem`.
    """

    def __init__(self, events: list[tuple[str, str]], brokers: Brokers, topic: str, partitions: int,
                 before: int, pace_s: float = 0.003, patience_s: float = 10.0, tail_delay_s: float = 0.5):
        self.events, self.brokers, self.topic, self.partitions = events, brokers, topic, partitions
        self.before, self.pace_s, self.patience_s, self.tail_delay_s = before, pace_s, patience_s, tail_delay_s
        self.handed_over = 0
        self.problem: str | None = None
        self.lost_acks = 0  # records committed while every response was being dropped
        self.faults_done = threading.Event()
        self._watcher: threading.Thread | None = None

    def _proxies(self, mode: str) -> None:
        for proxy in self.brokers.cluster.proxies.values():
            proxy.set_mode(mode)

    def _watch(self, baseline: int) -> None:
        try:
            applied = until(lambda: self.brokers.written(self.topic, self.partitions) > baseline,
                            self.patience_s, "a write whose response is lost")
            self.lost_acks = self.brokers.written(self.topic, self.partitions) - baseline
            if not applied:
                self.problem = (f"while the brokers' responses were being dropped, no further event reached "
                                f"the cluster within {self.patience_s:.0f} s")
        finally:
            self._proxies("cut")  # the producer sees its connections die and must resend
            self._proxies("pass")
            self.faults_done.set()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for i, event in enumerate(self.events):
            if i == self.before:
                if not until(lambda: self.brokers.written(self.topic, self.partitions) >= self.before,
                             self.patience_s, "the first events"):
                    self.problem = (f"{self.patience_s:.0f} s after the first {self.before} events were handed "
                                    f"over, the cluster held only {self.brokers.written(self.topic, self.partitions)}"
                                    " of them")
                    return
                self._proxies("drop_responses")
                # Counted once the drop is on: whatever is written after this, its answer is thrown away.
                baseline = self.brokers.written(self.topic, self.partitions)
                self._watcher = threading.Thread(target=self._watch, args=(baseline,), daemon=True,
                                                 name="kata21-faults")
                self._watcher.start()
            if i == len(self.events) - 1:
                # The fault is over first (its watcher ends by letting the proxies pass), then the network slows.
                if self._watcher is not None:
                    self.faults_done.wait(self.patience_s + 5)
                for proxy in self.brokers.cluster.proxies.values():
                    proxy.set_mode("delay", self.tail_delay_s)
            self.handed_over += 1
            yield event
            time.sleep(self.pace_s)  # a live stream: events arrive over time, not all at once

    def finish(self) -> None:
        """Make sure the network is whole again, whatever happened."""
        if self._watcher is not None:
            self._watcher.join(self.patience_s + 5)
        self._proxies("pass")
