"""Check helpers for katas about consumers that commit (kata-04 manual commit, kata-05 delivery
semantics): a topic of numbered records, the learner's consumer in child processes (killed right
after a process() call, or in the middle of one), and the group's committed offsets as the broker
reports them."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import KafkaException, TopicPartition

from grader.kit.childrun import ChildRun
from grader.kit.kafka import explain

PARTITIONS = 3
PER_PARTITION = 8
# Extra consumer settings the checks pass in `config` (plus a group.instance.id per group, see learner_kwargs).
# A SIGKILLed member never leaves its group. With a static member id the restarted consumer takes the dead
# one's place at once; without one its join would wait for the dead member's session to time out.
CONFIG = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 300}
# How long a record is held "in processing" before the kill. Longer than librdkafka's default
# auto.commit.interval.ms (5000 ms), so an auto-commit timer always fires while the record is held.
HOLD_S = 6.5
DEADLINE_S = 30.0  # generous: the machine is shared
IDLE_S = 5.0  # a run that has delivered records and then delivers nothing new for this long is done
FIRST_RECORD_S = 15.0  # a run that has delivered nothing for this long will not (a group join takes < 1 s)

Offsets = dict[int, "int | None"]


# ---------------------------------------------------------------------- the topic


def make_topic(kafka) -> tuple[str, dict[int, int]]:
    """A topic with PER_PARTITION records in each partition; returns it and each partition's end offset."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    producer = kafka.producer()
    for seq in range(PER_PARTITION):
        for p in range(PARTITIONS):
            producer.produce(topic, key=f"p{p}-{seq}", value=json.dumps({"partition": p, "seq": seq}), partition=p)
    if producer.flush(30):
        raise KafkaException("the check could not write its own test records")
    return topic, {p: PER_PARTITION for p in range(PARTITIONS)}


def total(ends: dict[int, int]) -> int:
    return sum(ends.values())


# ---------------------------------------------------------------------- committed offsets


class Committed:
    """The group's committed offsets, fetched from the broker by a consumer that never joins the group."""

    def __init__(self, kafka, group: str, topic: str):
        self.consumer = kafka.consumer(group=group)
        self.topic = topic

    def read(self) -> Offsets:
        for attempt in range(20):
            try:
                tps = self.consumer.committed([TopicPartition(self.topic, p) for p in range(PARTITIONS)], timeout=10)
                return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in tps}
            except KafkaException:
                if attempt == 19:
                    raise
                time.sleep(0.2)
        return {}


def resume_at(committed: Offsets) -> dict[int, int]:
    """Where a restarted consumer starts: the committed offset, or 0 (earliest) without one."""
    return {p: (0 if off is None else off) for p, off in committed.items()}


def show(offsets: dict) -> str:
    return ", ".join(f"p{p}: {'none' if off is None else off}" for p, off in sorted(offsets.items()))


def show_records(records) -> str:
    items = sorted(records)
    text = ", ".join(f"p{p}@{o}" for p, o in items[:5])
    return text + (f" … ({len(items)} in all)" if len(items) > 5 else "")


# ---------------------------------------------------------------------- the learner's consumer


def learner_kwargs(kafka, topic: str, group: str) -> dict:
    # One static member id per group: every run of a check is "the same member, restarted".
    return {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic, "group_id": group,
            "config": {**CONFIG, "group.instance.id": group + "-member"}}


def start(impl_path, tmp_path, kafka, topic: str, group: str, name: str, function: str,
          crash_after: int | None = None) -> ChildRun:
    return ChildRun(impl_path, function, learner_kwargs(kafka, topic, group), workdir=tmp_path,
                    crash_after=crash_after, name=name)


def start_holding(impl_path, tmp_path, kafka, topic: str, group: str, name: str, function: str,
                  hold_at: int) -> tuple[ChildRun, Path]:
    """Run the learner's function with a process() that never returns from its hold_at-th call."""
    run = ChildRun(impl_path, function, learner_kwargs(kafka, topic, group), workdir=tmp_path, name=name,
                   hold_at=hold_at)
    return run, run.hold_file


def processed(run: ChildRun, did: str) -> list[tuple[int, int]]:
    """(partition, offset) of every record the run's process() received, in order."""
    out = []
    for rec in run.records():
        if "partition" not in rec:
            explain(did=did, saw=f"process() was called with {rec.get('value')!r:.120} instead of a message",
                    expected="process(msg) called with the confluent_kafka.Message that poll() returned")
        out.append((rec["partition"], rec["offset"]))
    return out


def ending(run: ChildRun) -> str:
    """How a run ended, in words, with the learner's own error when there is one."""
    err = run.error()
    if err:
        return f"your function raised {err['type']}: {err['message']}\n{err['traceback'][-1200:]}"
    code = run.proc.poll()
    if code == 0:
        return "your function returned while should_stop() was still False"
    out = run.output().strip().splitlines()
    return f"the process ended with exit code {code}; its last output: {' | '.join(out[-4:]) or 'none'}"


def wait_crash(run: ChildRun, crash_after: int, did: str) -> None:
    """Wait for the planned SIGKILL right after the crash_after-th process() call."""
    code = run.wait(DEADLINE_S)
    if code is None:
        count = len(run.records())
        run.kill()
        explain(did=did, saw=f"after {DEADLINE_S:.0f}s your consumer had handed {count} records to process() and "
                "was still running", expected=f"at least {crash_after} records handed to process()",
                nudge="does your consumer subscribe to the topic, and start from the earliest offset when the "
                "group has no committed offset yet?")
    if code != -9:
        explain(did=did, saw=f"after {len(run.records())} process() calls, {ending(run)}",
                expected=f"your consumer to keep consuming until it was killed in its {crash_after}th process() call")


def wait_hold(run: ChildRun, hold_file: Path, hold_at: int, did: str) -> tuple[int, int]:
    """Wait until the run is inside its hold_at-th process() call; return the record it holds."""
    deadline = time.monotonic() + DEADLINE_S
    while not hold_file.exists():
        if run.proc.poll() is not None:
            explain(did=did, saw=f"after {len(run.records())} process() calls, {ending(run)}",
                    expected=f"your consumer to keep consuming until it was killed in its {hold_at}th process() call")
        if time.monotonic() > deadline:
            count = len(run.records())
            run.kill()
            explain(did=did, saw=f"after {DEADLINE_S:.0f}s your consumer had handed {count} records to process()",
                    expected=f"at least {hold_at} records handed to process()",
                    nudge="does your consumer subscribe to the topic, and start from the earliest offset when "
                    "the group has no committed offset yet?")
        time.sleep(0.05)
    held = json.loads(hold_file.read_text())
    if "partition" not in held:
        run.kill()
        explain(did=did, saw=f"process() was called with {held.get('not_a_message')} instead of a message",
                expected="process(msg) called with the confluent_kafka.Message that poll() returned")
    return held["partition"], held["offset"]


def watch_while_held(watcher: Committed, partition: int, offset: int, limit: float) -> Offsets:
    """Watch the committed offsets while the record (partition, offset) is held in process(), until
    the group commits past it or `limit` seconds pass; return the last offsets seen."""
    deadline = time.monotonic() + limit
    seen = watcher.read()
    while time.monotonic() < deadline:
        if (seen.get(partition) or 0) > offset:
            break
        time.sleep(0.2)
        seen = watcher.read()
    return seen


def finish(run: ChildRun, expected: set[tuple[int, int]], earlier: list[tuple[int, int]], did: str) -> None:
    """Let a run process until every record in `expected` has been processed (by it or by `earlier`
    runs) or it stops making progress; then make should_stop() return True and wait for it to return."""
    started = last_change = time.monotonic()
    last_count = -1
    while time.monotonic() - started < DEADLINE_S:
        mine = processed(run, did)
        if expected <= set(earlier) | set(mine):
            break
        if len(mine) != last_count:
            last_count, last_change = len(mine), time.monotonic()
        elif time.monotonic() - last_change > (IDLE_S if mine else FIRST_RECORD_S):
            break  # it has gone as far as it will: the caller judges what is missing
        if run.proc.poll() is not None:
            explain(did=did, saw=f"after {len(mine)} process() calls, {ending(run)}",
                    expected="your consumer to keep consuming until should_stop() returns True")
        time.sleep(0.1)
    run.stop()
    code = run.wait(20)
    if code is None:
        run.kill()
        explain(did=did + ", then made should_stop() return True", saw="your function was still running 20s later",
                expected="it to close its consumer and return within a few seconds",
                nudge="check should_stop() at least once a second, and leave the loop when it returns True.")
    if code != 0:
        explain(did=did + ", then made should_stop() return True", saw=ending(run),
                expected="your function to close its consumer and return normally")


def duplicates(records: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted(r for r, n in Counter(records).items() if n > 1)


def all_records(ends: dict[int, int]) -> set[tuple[int, int]]:
    return {(p, o) for p, end in ends.items() for o in range(end)}
