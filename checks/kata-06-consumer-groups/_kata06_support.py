"""Helpers for the kata-06 checks: run several learner members, and read the group from the broker."""

from __future__ import annotations

import contextlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import KafkaException

from grader.kit import ChildRun, explain

# Fast heartbeats so members notice a rebalance within a fraction of a second; a session timeout
# long enough that a busy 2-core machine never drops a healthy member.
MEMBER_CONFIG = {"heartbeat.interval.ms": 300, "session.timeout.ms": 6000}
GROUP_DEADLINE_S = 20.0
# A member joins within a second or two of starting; a group still without any member after this
# long never forms (wrong group id, assign() instead of subscribe()), so stop waiting for it.
NO_MEMBER_GIVE_UP_S = 15.0
PROCESS_DEADLINE_S = 30.0
# 120 messages take members well under a second; this long without any progress means stuck.
NO_PROGRESS_GIVE_UP_S = 12.0


@dataclass
class GroupView:
    """What the broker says about a consumer group right now."""
    state: str
    members: list[tuple[str, list[int]]] = field(default_factory=list)  # (member id, partitions of our topic)
    error: str = ""

    @property
    def owners(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = defaultdict(list)
        for member, parts in self.members:
            for p in parts:
                out[p].append(member)
        return out

    def describe(self) -> str:
        if self.error:
            return f"describing the group failed: {self.error}"
        if not self.members:
            return f"group state {self.state}, no members"
        shown = "; ".join(f"member …{m[-6:]} owns partitions {sorted(p)}" for m, p in self.members)
        return f"group state {self.state}, {len(self.members)} members: {shown}"


def describe_group(kafka, group: str, topic: str) -> GroupView:
    try:
        desc = kafka.admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    except KafkaException as exc:
        return GroupView(state="UNKNOWN", error=str(exc.args[0]))
    members = []
    for m in desc.members:
        parts = [tp.partition for tp in (m.assignment.topic_partitions if m.assignment else []) if tp.topic == topic]
        members.append((m.member_id, sorted(parts)))
    state = getattr(desc.state, "name", str(desc.state))
    return GroupView(state=state, members=members)


def start_members(impl_path, tmp_path, kafka, topic: str, group: str, count: int) -> list[ChildRun]:
    runs = []
    for n in range(count):
        runs.append(ChildRun(impl_path, "run_member",
                             {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic, "group_id": group,
                              "config": dict(MEMBER_CONFIG)},
                             workdir=tmp_path, name=f"member-{n + 1}"))
    return runs


def stop_members(runs: list[ChildRun], timeout: float = 30.0) -> None:
    for run in runs:
        run.stop()
    deadline = time.monotonic() + timeout
    for run in runs:
        run.wait(max(0.1, deadline - time.monotonic()))
    for run in runs:
        run.close()


def check_alive(runs: list[ChildRun], did: str) -> None:
    """Fail at once (with the member's own error) if a member process already ended."""
    for n, run in enumerate(runs, 1):
        code = run.proc.poll()
        if code is not None:
            err = run.error()
            saw = (f"member {n} ended early (exit code {code})"
                   + (f" with {err['type']}: {err['message']}" if err else f"; its output: {run.output()[-600:]}"))
            explain(did=did, saw=saw, expected="every member keeps running until the check asks it to stop",
                    nudge="that error comes from your run_member: a member must keep polling until should_stop() "
                    "returns True.")


def wait_for_group(kafka, runs, group: str, topic: str, members: int, partitions: int,
                   timeout: float = GROUP_DEADLINE_S) -> tuple[bool, GroupView]:
    """Wait until the broker shows a stable group of `members` members sharing every partition.

    Returns (settled, last view) instead of failing, so each check can explain in its own terms.
    """
    start = time.monotonic()
    view = GroupView(state="UNKNOWN")
    while time.monotonic() < start + timeout:
        check_alive(runs, f"started {len(runs)} members of group {group!r} on a {partitions}-partition topic")
        view = describe_group(kafka, group, topic)
        owners = view.owners
        if (view.state == "STABLE" and len(view.members) == members
                and sorted(owners) == list(range(partitions)) and all(len(o) == 1 for o in owners.values())):
            return True, view
        if not view.members and time.monotonic() > start + NO_MEMBER_GIVE_UP_S:
            break
        time.sleep(0.2)
    return False, view


def produce_per_partition(kafka, topic: str, partitions: int, per_partition: int) -> dict[int, int]:
    """Write `per_partition` messages to every partition; return the end offset of each."""
    producer = kafka.producer()
    for i in range(per_partition):
        for p in range(partitions):
            producer.produce(topic, key=f"k{p}-{i}", value=f"message {i} of partition {p}", partition=p)
    remaining = producer.flush(30)
    if remaining:
        raise KafkaException(f"{remaining} test messages were not delivered to {topic}")
    consumer = kafka.consumer()
    try:
        return {p: kafka.high_watermark(consumer, topic, p) for p in range(partitions)}
    finally:
        consumer.close()
        kafka._clients.remove(consumer)


def processed(runs: list[ChildRun]) -> dict[int, list[tuple[int, int]]]:
    """Member number -> the (partition, offset) pairs its process() saw."""
    return {n: [(r["partition"], r["offset"]) for r in run.records() if "partition" in r]
            for n, run in enumerate(runs, 1)}


def wait_all_processed(runs, ends: dict[int, int], timeout: float = PROCESS_DEADLINE_S) -> bool:
    """Wait until every message up to `ends` was processed by some member; True if it happened."""
    wanted = {(p, o) for p, end in ends.items() for o in range(end)}
    deadline = time.monotonic() + timeout
    last_count, last_progress = -1, time.monotonic()
    while time.monotonic() < deadline:
        seen = set()
        count = 0
        for pairs in processed(runs).values():
            seen.update(pairs)
            count += len(pairs)
        if wanted <= seen:
            return True
        if any(run.proc.poll() is not None for run in runs):
            return False
        if count != last_count:
            last_count, last_progress = count, time.monotonic()
        elif time.monotonic() - last_progress > NO_PROGRESS_GIVE_UP_S:
            return False
        time.sleep(0.2)
    return False


def tally(runs, ends: dict[int, int]):
    """(missing pairs, pairs processed more than once, partition -> members that processed it)."""
    counts: Counter = Counter()
    by_partition: dict[int, set[int]] = defaultdict(set)
    for member, pairs in processed(runs).items():
        counts.update(pairs)
        for p, _ in pairs:
            by_partition[p].add(member)
    missing = sorted((p, o) for p, end in ends.items() for o in range(end) if counts[(p, o)] == 0)
    dupes = sorted(pair for pair, c in counts.items() if c > 1)
    return missing, dupes, counts, by_partition


def cleanup(runs) -> None:
    with contextlib.suppress(Exception):
        stop_members(runs, timeout=15)
