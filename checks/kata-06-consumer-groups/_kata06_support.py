"""Helpers for the kata-06 checks: run several learner members, and read the group from the broker."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import KafkaException

from grader.kit import ChildRun, explain

# Fast heartbeats so members notice a rebalance within a fraction of a second; a session timeout
# long enough that a busy 2-core machine never drops a healthy member. Partition-EOF events: poll()
# also returns events that are not messages (msg.error() set, not fatal), as it does in real life.
MEMBER_CONFIG = {"heartbeat.interval.ms": 300, "session.timeout.ms": 6000, "enable.partition.eof": True}
# should_stop() is checked at least once a second; 1.5 s more to close the consumer and exit on a busy machine.
STOP_LIMIT_S = 2.5
# STOP_LIMIT_S alone lets a poll(2.5) loop through when the stop falls early in its wait: each member's process
# times every gap between two should_stop() calls (ChildRun.max_stop_gap), once a second with room for a
# busy machine (the reference polls for 0.5 s).
STOP_GAP_S = 2.0
# A member that closes its consumer leaves the group at once (well under a second); one that does not
# stays a member until its session times out (session.timeout.ms above: 6 s).
LEAVE_LIMIT_S = 3.0
# A member fenced by a new one with its static group.instance.id hears of it at its next heartbeat (300 ms).
FENCE_LIMIT_S = 5.0
GROUP_DEADLINE_S = 20.0
# A member joins within a second or two of starting; a group still without any member after this
# long never forms (wrong group id, assign() instead of subscribe()), so stop waiting for it.
NO_MEMBER_GIVE_UP_S = 10.0
PROCESS_DEADLINE_S = 30.0
# 120 messages take members well under a second; this long without any progress means stuck.
NO_PROGRESS_GIVE_UP_S = 8.0


@dataclass
class GroupView:
    """What the broker says about a consumer group right now."""
    state: str
    members: list[tuple[str, list[int]]] = field(default_factory=list)  # (member id, partitions of our topic)
    error: str = ""
    client_ids: list[str] = field(default_factory=list)  # each member's client.id, in the order of `members`

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
    return GroupView(state=state, members=members, client_ids=[m.client_id for m in desc.members])


def start_members(impl_path, tmp_path, kafka, topic: str, group: str, count: int, first: int = 1,
                  eof: bool = True, static_as: int | None = None) -> list[ChildRun]:
    """Start `count` members numbered from `first`. eof=False leaves partition-EOF events off, for members
    whose stop is timed once idle: an EOF event arriving just after the stop would wake a long poll().
    static_as=N gives each member the static group.instance.id of member N (or, with 0, its own)."""
    config = dict(MEMBER_CONFIG)
    if not eof:
        del config["enable.partition.eof"]
    runs = []
    for n in range(first, first + count):
        # A client.id of our own in config: the broker reports it for each member, which shows that the
        # member applied config on top of its own settings.
        member = {**config, "client.id": client_id(n)}
        if static_as is not None:
            member["group.instance.id"] = f"{group}-member-{static_as or n}"
        runs.append(ChildRun(impl_path, "run_member", {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic,
                                                        "group_id": group, "config": member},
                             workdir=tmp_path, name=f"member-{n}"))
    return runs


def client_id(n: int) -> str:
    return f"kata06-member-{n}"


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
        if not view.members and (time.monotonic() > start + NO_MEMBER_GIVE_UP_S
                                 or any(run.records() for run in runs)):
            break  # no member ever joined, or members process messages without being in the group
        time.sleep(0.1)
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
    return end_offsets(kafka, topic, partitions)


def end_offsets(kafka, topic: str, partitions: int) -> dict[int, int]:
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
        time.sleep(0.05)
    return False


def tally(runs, ends: dict[int, int], since: dict[int, int] | None = None):
    """(missing pairs, pairs processed more than once, pairs counted, partition -> members that processed
    it at offsets from `since` on, pairs that are not messages of the topic)."""
    counts: Counter = Counter()
    by_partition: dict[int, set[int]] = defaultdict(set)
    for member, pairs in processed(runs).items():
        counts.update(pairs)
        for p, o in pairs:
            if o >= (since or {}).get(p, 0):
                by_partition[p].add(member)
    missing = sorted((p, o) for p, end in ends.items() for o in range(end) if counts[(p, o)] == 0)
    dupes = sorted(pair for pair, c in counts.items() if c > 1)
    extras = sorted(pair for pair in counts if not 0 <= pair[1] < ends.get(pair[0], 0))
    return missing, dupes, counts, by_partition, extras


def show_pairs(pairs) -> str:
    items = sorted(pairs)
    text = ", ".join(f"p{p}@{o}" for p, o in items[:6])
    return text + (f" … ({len(items)} in all)" if len(items) > 6 else "")


class Trickle:
    """Keeps a few messages a second arriving on every partition while it runs, so a member never sees
    poll() come back empty: a busy member, as in production."""

    def __init__(self, kafka, topic: str, partitions: int, every_s: float = 0.05):
        self.producer = kafka.producer(**{"linger.ms": 0})
        self.topic, self.partitions, self.every_s = topic, partitions, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="trickle")

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            for p in range(self.partitions):
                self.producer.produce(self.topic, value=f"trickle {n}", partition=p)
            self.producer.poll(0)
            n += 1
            self._stop.wait(self.every_s)
        self.producer.flush(10)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(15)


def stop_timed(runs: list[ChildRun], limit: float = STOP_LIMIT_S) -> list[tuple[int, float | None]]:
    """Make should_stop() return True for these members; (member number, seconds to return, or None
    when still running after `limit`) for each. Member numbers are 1-based positions in `runs`."""
    asked = time.monotonic()
    for run in runs:
        run.stop()
    out = []
    for run in runs:
        code = run.wait(max(0.05, asked + limit - time.monotonic()))
        out.append(None if code is None else time.monotonic() - asked)
    return out


def wait_members(kafka, group: str, topic: str, count: int, timeout: float) -> tuple[float | None, GroupView]:
    """Wait until the broker shows `count` members in the group; (seconds it took or None, last view)."""
    start = time.monotonic()
    view = describe_group(kafka, group, topic)
    while time.monotonic() - start < timeout:
        if len(view.members) == count and view.state == "STABLE":
            return time.monotonic() - start, view
        time.sleep(0.05)
        view = describe_group(kafka, group, topic)
    return None, view


def cleanup(runs) -> None:
    with contextlib.suppress(Exception):
        stop_members(runs, timeout=15)

