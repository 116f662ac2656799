"""Helpers for the kata-20 checks: take a broker down and bring it back, and what the cluster's
metadata says, asked directly.

How a broker is taken down: its JVM is frozen (SIGSTOP) and its fault proxy cuts every client
connection. To the rest of the cluster that is a dead broker: it stops heartbeating, is fenced and
leaves the ISR, and its partitions get new leaders. To clients it is a dead broker too: connections
drop and new ones are refused. Bringing it back (SIGCONT) is a restart that keeps its log; it catches
up from the new leaders and rejoins the ISR. (The grader treats the exit of a broker process it
started as the death of the whole cluster, so checks freeze brokers instead of killing them.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

QUIET = {"log_level": 0}


def until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll until condition() holds; False at the deadline (the caller explains what was missing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except KafkaException:
            pass
        time.sleep(interval)
    return False


class Brokers:
    """The cluster as the checks see it, straight to the brokers' ports, never through a fault proxy."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.down: set[int] = set()

    def _direct(self, only_live: bool = False) -> str:
        # The inter-broker listener advertises the brokers' own ports, so these clients bypass the proxies
        # (the client listener advertises the proxies, even to a client bootstrapped on the real ports).
        nodes = [n for n in self.cluster.node_ids if not (only_live and n in self.down)]
        return ",".join(f"127.0.0.1:{self.cluster._node(n)['broker_port']}" for n in nodes)

    def admin(self) -> AdminClient:
        """A fresh client that knows only the brokers that are up: a long-lived one keeps sending its
        metadata requests to a frozen broker whose connection still looks open."""
        return AdminClient({"bootstrap.servers": self._direct(only_live=True), **QUIET})

    # ---- what the cluster says ---------------------------------------------------------------
    def partitions(self, topic: str) -> dict:
        md = self.admin().list_topics(topic, timeout=5).topics.get(topic)
        return {} if md is None or md.error is not None else md.partitions

    def partition(self, topic: str, partition: int = 0):
        return self.partitions(topic)[partition]

    def leader(self, topic: str, partition: int = 0) -> int:
        """The partition's leader, -1 when it has none (or the topic is not known yet)."""
        part = self.partitions(topic).get(partition)
        return -1 if part is None else part.leader

    def registered(self) -> int:
        return len(self.admin().list_topics(timeout=5).brokers)

    def in_sync(self, topics: tuple[str, ...]) -> bool:
        """Every partition of the topics has a leader and all its replicas in the ISR."""
        for topic in topics:
            parts = self.partitions(topic)
            if not parts or any(sorted(p.isrs) != sorted(p.replicas) or p.leader < 0 for p in parts.values()):
                return False
        return True

    # ---- faults --------------------------------------------------------------------------------
    def _signal(self, node_id: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.cluster._node(node_id)["pid"], sig)

    def take_down(self, *node_ids: int) -> None:
        for n in node_ids:
            self._signal(n, signal.SIGSTOP)
            self.down.add(n)
            self.cluster.proxies[n].set_mode("cut")

    def bring_back(self, *node_ids: int) -> None:
        for n in node_ids:
            self._signal(n, signal.SIGCONT)
            self.cluster.proxies[n].set_mode("pass")
            self.down.discard(n)

    def heal(self, topics: tuple[str, ...] = (), timeout: float = 60) -> bool:
        """Every broker running and registered, every proxy passing, and the topics fully in sync.

        Also run before a scenario: a run stopped at its timeout may have left a broker frozen.
        """
        for n in self.cluster.node_ids:
            self._signal(n, signal.SIGCONT)
            self.cluster.proxies[n].set_mode("pass")
        self.down.clear()
        size = len(self.cluster.node_ids)
        return until(lambda: self.registered() == size and self.in_sync(topics), timeout)
