"""Helpers for the kata-19 checks: take brokers down and bring them back, a paced message stream that
does so at exact points of its own progress, and what the brokers hold, asked directly.

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
import threading
import time
from collections.abc import Callable, Iterator

from confluent_kafka import Consumer, KafkaException, TopicPartition
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
        self._reader = Consumer({"bootstrap.servers": self._direct(), "group.id": "kata19-watermarks",
                                 "enable.auto.commit": False, **QUIET})

    def _direct(self, only_live: bool = False) -> str:
        # The inter-broker listener advertises the brokers' own ports, so these clients bypass the proxies
        # (the client listener advertises the proxies, even to a client bootstrapped on the real ports).
        nodes = [n for n in self.cluster.node_ids if not (only_live and n in self.down)]
        return ",".join(f"127.0.0.1:{self.cluster._node(n)['broker_port']}" for n in nodes)

    def admin(self) -> AdminClient:
        """A fresh client that knows only the brokers that are up: a long-lived one keeps sending its
        metadata requests to a frozen broker whose connection still looks open."""
        return AdminClient({"bootstrap.servers": self._direct(only_live=True), **QUIET})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._reader.close()

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

    def committed(self, topic: str, partition: int = 0) -> int:
        """The high watermark: records every in-sync replica has, whoever acknowledged them. Asks the
        leader, so only while the leader is up."""
        return self._reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=5, cached=False)[1]

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
        for n in node_ids:  # freeze them all first: they go down together, not one after the other
            self._signal(n, signal.SIGSTOP)
            self.down.add(n)
        for n in node_ids:
            self.cluster.proxies[n].set_mode("cut")

    def freeze(self, node_id: int) -> None:
        """Only the JVM: clients still connect, and what they send waits unanswered."""
        self._signal(node_id, signal.SIGSTOP)
        self.down.add(node_id)

    def cut(self, node_id: int) -> None:
        self.cluster.proxies[node_id].set_mode("cut")

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


class Stream:
    """The messages the learner's function iterates over, paced like a live feed, with actions that run
    when the learner asks for the message at a given index (before it is handed over).

    An action returns None to go on, or a string to end the stream early (the problem is kept in
    `problem`); the stream never raises into the learner's code.
    """

    def __init__(self, messages: list[tuple[str, str]], actions: dict[int, Callable[[], str | None]],
                 pace_s: float = 0.004):
        self.messages, self.actions, self.pace_s = messages, actions, pace_s
        self.handed_over = 0
        self.problem: str | None = None
        self.marks: dict[int, float] = {}
        self.last_handed: float | None = None  # when the learner took the latest message (monotonic)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for i, message in enumerate(self.messages):
            if i in self.actions:
                self.problem = self.actions[i]()
                self.marks[i] = time.monotonic()
                if self.problem:
                    return
            self.handed_over += 1
            self.last_handed = time.monotonic()
            yield message
            time.sleep(self.pace_s)  # a live feed: messages arrive over time, not all at once


def run_with_deadline(func: Callable[[], object], deadline_s: float) -> tuple[bool, object, BaseException | None]:
    """Run the learner's call in a thread: (returned, result, error). A hung call does not hang the check."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = func()
        except BaseException as exc:  # reported by the checks, in the learner's terms
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="learner-call")
    worker.start()
    worker.join(deadline_s)
    return "result" in box, box.get("result"), box.get("error")


def show_the_loss(kit, brokers: Brokers, topic: str, old_leader: int, followers: list[int],
                  acked_during: list[str]) -> str:
    """Only when a write was acknowledged with one copy: now lose that copy, and look.

    The verdict does not depend on this. Whether the acknowledged records are gone depends on whether
    a follower's last fetch had carried them before it went down: usually not, and it is not forced.
    """
    brokers.take_down(old_leader)
    brokers.bring_back(*followers)
    if not until(lambda: brokers.leader(topic) not in (old_leader, -1), 30):
        return "(the check then took the leader down too, but no new leader was elected within 30 s)"
    new = brokers.leader(topic)
    present = {r.value_text for r in kit.read_all(topic, timeout=15)}
    gone = [v for v in acked_during if v not in present]
    if gone:
        return (f"Then the check took the old leader {old_leader} down as well and brought the followers "
                f"back: broker {new} became leader, and {len(gone)} of the messages you reported as "
                f"acknowledged are not on it (e.g. {gone[:3]}). When broker {old_leader} returns it "
                "truncates its log to match the new leader: they are lost for good.")
    return (f"Then the check took the old leader {old_leader} down as well and brought the followers back: "
            f"broker {new} became leader and, this time, it had fetched those messages just before it went "
            "down. Nothing guaranteed that.")
