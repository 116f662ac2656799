"""Helpers for the kata-08 checks: a steady stream of messages, learner members in child processes,
and what the broker says about the group."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import KafkaException

from grader.kit import ChildRun, explain

PARTITIONS = 4
STREAM_RATE = 200  # messages per second, spread over the partitions
DEADLINE_S = 30.0  # generous: the machine is shared, and a rebalance can take a few heartbeats
NO_PROGRESS_GIVE_UP_S = 12.0
# A member checks should_stop() at least once a second, then close() revokes (one commit) and leaves:
# well under a second on a quiet machine. Past this, it was not checking should_stop() often enough.
STOP_S = 4.0
# STOP_S alone lets a poll(3) loop through when the stop falls early in its wait: the member's process
# times every gap between two should_stop() calls (ChildRun.max_stop_gap), once a second with room for a
# busy machine (the reference polls for 0.5 s).
STOP_GAP_S = 2.0


# ---------------------------------------------------------------------- the group, as the broker sees it


@dataclass
class GroupView:
    state: str
    members: list[tuple[str, str, list[int]]] = field(default_factory=list)  # (member id, client id, partitions)
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return f"describing the group failed: {self.error}"
        if not self.members:
            return f"group state {self.state}, no members"
        shown = "; ".join(f"member …{m[-6:]} owns {sorted(p)}" for m, _, p in self.members)
        return f"group state {self.state}, {len(self.members)} member(s): {shown}"

    def settled(self, members: int) -> bool:
        """Stable, with `members` members that each own something and together own every partition once."""
        owned = [p for _, _, parts in self.members for p in parts]
        return (self.state == "STABLE" and len(self.members) == members
                and all(parts for _, _, parts in self.members) and sorted(owned) == list(range(PARTITIONS)))


def describe_group(kafka, group: str, topic: str) -> GroupView:
    try:
        desc = kafka.admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    except KafkaException as exc:
        return GroupView(state="UNKNOWN", error=str(exc.args[0]))
    members = []
    for m in desc.members:
        parts = [tp.partition for tp in (m.assignment.topic_partitions if m.assignment else []) if tp.topic == topic]
        members.append((m.member_id, m.client_id, sorted(parts)))
    return GroupView(state=getattr(desc.state, "name", str(desc.state)), members=members)


# ---------------------------------------------------------------------- a steady stream of messages


class Stream:
    """Writes numbered messages round-robin over the partitions at a steady rate, in a thread,
    so members join, leave and die while messages are really flowing."""

    def __init__(self, kafka, topic: str, rate: int = STREAM_RATE):
        self.kafka, self.topic, self.rate = kafka, topic, rate
        self.sent = 0
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = self.kafka.producer(**{"linger.ms": 5})
        try:
            start = time.monotonic()
            while not self._stop.is_set():
                # Pace by the clock, not by a fixed sleep per message: a slow machine catches up.
                due = int((time.monotonic() - start) * self.rate) + 1
                while self.sent < due:
                    producer.produce(self.topic, key=f"m{self.sent}",
                                     value=json.dumps({"seq": self.sent}), partition=self.sent % PARTITIONS)
                    self.sent += 1
                producer.poll(0)
                self._stop.wait(0.01)
            if producer.flush(30):
                raise KafkaException("the check's own stream could not deliver every message")
        except Exception as exc:  # surfaced by stop()
            self._error = exc

    def stop(self) -> dict[int, int]:
        """Stop writing; return each partition's end offset (everything the members must process)."""
        self._stop.set()
        self._thread.join(60)
        if self._error:
            raise self._error
        consumer = self.kafka.consumer()
        try:
            return {p: self.kafka.high_watermark(consumer, self.topic, p) for p in range(PARTITIONS)}
        finally:
            consumer.close()
            self.kafka._clients.remove(consumer)


# ---------------------------------------------------------------------- members


class Member:
    """One learner run_member() in its own process."""

    def __init__(self, name: str, impl_path, tmp_path, kafka, topic: str, group: str, commit_every: int,
                 config: dict, crash_after: int | None = None, hold_at: int | None = None):
        self.name = name
        self.run = ChildRun(impl_path, "run_member",
                            {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic, "group_id": group,
                             "commit_every": commit_every, "config": dict(config)},
                            workdir=tmp_path, crash_after=crash_after, hold_at=hold_at, name=f"member-{name}")
        self.paused = False

    def records(self) -> list[tuple[int, int]]:
        return [(r["partition"], r["offset"]) for r in self.run.records() if "partition" in r]

    def count(self) -> int:
        return len(self.records())

    @property
    def ended(self) -> bool:
        return self.run.proc.poll() is not None

    def ending(self) -> str:
        """How the process ended, in words, with the learner's own error when there is one."""
        code = self.run.proc.poll()
        err = self.run.error()
        if err:
            return f"member {self.name} ended with {err['type']}: {err['message']}"
        out = self.run.output().strip().splitlines()
        tail = " | ".join(out[-4:]) if out else "no output"
        return f"member {self.name} ended (exit code {code}); its last output: {tail}"

    def pause(self) -> None:
        self.run.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.run.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def stop(self) -> None:
        self.run.stop()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.resume()
            self.run.close()


ENDED_NUDGE = ("that error comes from your run_member. Which of your calls can fail during a rebalance, and is "
               "that failure really fatal?")


def expect_running(did: str, *members: Member, nudge: str = ENDED_NUDGE) -> None:
    for m in members:
        if m.ended:
            explain(did=did, saw=m.ending(), seen_in="the member's process",
                    expected=f"member {m.name} keeps running until the check asks it to stop", nudge=nudge)


def wait_until(did: str, condition, what: str, members: tuple[Member, ...], timeout: float = DEADLINE_S,
               show=lambda: "", ended_nudge: str = ENDED_NUDGE) -> None:
    """Wait for condition(); fail (with the members' own errors first) if one of them ends or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        expect_running(did, *members, nudge=ended_nudge)
        try:
            if condition():
                return
        except KafkaException:
            pass
        time.sleep(0.1)
    explain(did=did, saw=f"after {timeout:.0f}s, still waiting for {what}. {show()}".strip(),
            expected=what,
            nudge="does every member keep polling, and does it leave the group (close()) when asked to stop?")


def stop_and_wait(did: str, *members: Member, timeout: float = STOP_S) -> None:
    """Ask members to stop; each must return normally (exit code 0) within the timeout."""
    for m in members:
        m.stop()
    deadline = time.monotonic() + timeout
    for m in members:
        code = m.run.wait(max(0.1, deadline - time.monotonic()))
        if code is None:
            explain(did=did + f", then made member {m.name}'s should_stop() return True",
                    saw=f"member {m.name} was still running {timeout:.0f}s later", seen_in="the member's process",
                    expected="run_member returns soon after should_stop() turns True: it checks should_stop() at "
                    "least once a second",
                    nudge="is should_stop() checked at least once a second, whether messages arrive or not? How "
                    "long can one poll() call wait?")
        if code != 0:
            explain(did=did + f", then made member {m.name}'s should_stop() return True", saw=m.ending(),
                    expected=f"member {m.name} closes its consumer and returns normally",
                    seen_in="the member's process",
                    nudge="close() revokes the member's partitions, so your revoke handling runs one last time. "
                    "What if there is nothing new to commit?")
        gap = m.run.max_stop_gap()
        if gap > STOP_GAP_S:
            explain(did=did + f", then made member {m.name}'s should_stop() return True (it returned in time), "
                    "having timed its should_stop() calls all along",
                    saw=f"member {m.name} went {gap:.1f}s without calling should_stop()",
                    seen_in="the member's process",
                    expected=f"should_stop() checked at least once a second, whether messages arrive or not (at "
                    f"most {STOP_GAP_S:.1f}s apart, with room for a busy machine)",
                    nudge="a stop that falls into such a gap waits for it to end. How long can one poll() call "
                    "wait when the topic is quiet?")


def expect_only_messages(did: str, members: tuple[Member, ...]) -> None:
    """process() is for messages only: the child records anything else it is given without a partition."""
    for m in members:
        odd = next((r for r in m.run.records() if "partition" not in r), None)
        if odd is not None:
            explain(did=did, saw=f"member {m.name} called process() with {odd.get('value')!r:.80} instead of a message",
                    seen_in="the member's process()",
                    expected="process(msg) called only for the messages poll() returned: never for None",
                    nudge="poll() returns None when nothing arrived within its timeout. What does your loop do "
                    "with that None before it checks it?")


def end_offsets(kafka, topic: str) -> dict[int, int]:
    consumer = kafka.consumer()
    try:
        return {p: kafka.high_watermark(consumer, topic, p) for p in range(PARTITIONS)}
    finally:
        consumer.close()
        kafka._clients.remove(consumer)


def last_message_then_stop(kafka, topic: str, did: str, members: tuple[Member, ...],
                           everyone: tuple[Member, ...]) -> dict[int, int]:
    """On a quiet topic: one message to partition 0; the moment a member has processed it (and is back in
    poll(), waiting), stop the members: each must be gone within STOP_S. The other member has processed
    nothing since its assignment: its last revoke has nothing to commit. Returns the end offsets."""
    producer = kafka.producer()
    producer.produce(topic, key="last", value=json.dumps({"seq": "last"}), partition=0)
    if producer.flush(30):
        raise KafkaException("the check's last message could not be delivered")
    ends = end_offsets(kafka, topic)
    last = (0, ends[0] - 1)
    wait_until(did + "; then wrote one more message to partition 0",
               lambda: any(last in m.records() for m in everyone), "a member to process that message", members)
    stop_and_wait(did + "; one more message to partition 0, and as soon as it was processed", *members)
    return ends


def wait_all_processed(did: str, members: tuple[Member, ...], ends: dict[int, int],
                       alive: tuple[Member, ...]) -> None:
    """Wait until every message up to `ends` was processed by some member (or progress stops)."""
    wanted = {(p, o) for p, end in ends.items() for o in range(end)}
    deadline = time.monotonic() + DEADLINE_S
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        expect_running(did, *alive)
        seen: set = set()
        total = 0
        for m in members:
            recs = m.records()
            seen.update(recs)
            total += len(recs)
        if wanted <= seen:
            return
        if total != last:
            last, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > NO_PROGRESS_GIVE_UP_S:
            return
        time.sleep(0.2)


def tally(members: tuple[Member, ...], ends: dict[int, int]):
    """(missing pairs, duplicate pairs, counts, pair -> names of the members that processed it)."""
    counts: Counter = Counter()
    who: dict[tuple[int, int], list[str]] = defaultdict(list)
    for m in members:
        for pair in m.records():
            counts[pair] += 1
            who[pair].append(m.name)
    missing = sorted((p, o) for p, end in ends.items() for o in range(end) if counts[(p, o)] == 0)
    dupes = sorted(pair for pair, c in counts.items() if c > 1)
    return missing, dupes, counts, who


def explain_missing(did: str, missing, total: int, committed: dict[int, int] | None = None) -> None:
    p, o = missing[0]
    explain(did=did, saw=f"{len(missing)} of {total} messages were never processed by any member (first: partition "
            f"{p} offset {o})" + (f"; the group's committed offsets: {committed}" if committed else ""),
            expected="every message processed at least once: a rebalance must never lose a message",
            nudge="after a rebalance, a partition's new owner starts at the group's committed offset. Can a "
            "committed offset ever be ahead of what was really processed?")


def describe_dupes(dupes, who) -> str:
    by_path: Counter = Counter(" then ".join(who[pair]) for pair in dupes)
    ways = ", ".join(f"{n} processed by {path}" for path, n in by_path.most_common(4))
    p, o = dupes[0]
    return f"{len(dupes)} messages were processed more than once ({ways}; first: partition {p} offset {o})"


def committed_offsets(kafka, group: str, topic: str) -> dict[int, int | str]:
    """The group's committed offsets per partition, "none" where nothing was ever committed."""
    return {p: (o if o >= 0 else "none") for p, o in kafka.committed(group, topic).items()}
