"""What the commit katas (kata-04 manual commit, kata-05 delivery semantics) share: topics of
numbered records with some partitions already committed, the learner's consumer in child processes
(killed right after a process() call, held in the middle of one, or asked to stop while busy), and
the group's committed offsets as the broker reports them, compared per partition.

Every helper takes the partition layout as data, so a check can vary partition counts, leave
partitions empty and pre-commit some of them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import KafkaException

from grader.kit.childrun import ChildRun
from grader.kit.commitoffsets import Committed, Offsets, show, value_of
from grader.kit.kafka import explain

# Extra consumer settings the checks pass in `config` (plus a group.instance.id per group):
# - a static member id and short session timings: a SIGKILLed member never leaves its group, and the
#   restarted consumer takes the dead one's place at once instead of waiting out its session;
# - a short auto.commit.interval.ms: a consumer that leaves librdkafka's timer on commits within half a
#   second of poll(), so holding a record "in processing" for a couple of seconds always sees it fire;
# - enable.partition.eof: the consumer also receives partition-EOF *events* (msg.error() set, not fatal).
#   process() must never see them, and they must not end the loop.
CONFIG = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 300, "auto.commit.interval.ms": 500,
          "enable.partition.eof": True}
HOLD_S = 2.0  # four auto-commit ticks
STOP_LIMIT_S = 2.5  # should_stop() is checked at least once a second; 1.5 s more to close and exit on a busy machine
DEADLINE_S = 30.0  # generous: the machine is shared
IDLE_S = 4.0  # a run that has delivered records and then delivers nothing new for this long is done
FIRST_RECORD_S = 15.0  # a run that has delivered nothing for this long will not (a group join takes < 1 s)
ASSIGNED_IDLE_S = 5.0  # ... nor one whose consumer has owned its partitions this long without a record
JOIN_GIVE_UP_S = 8.0  # ... nor a restart that has not taken the killed member's place in the group by then
# A consumer fenced by a second instance with its group.instance.id hears of it at its next heartbeat
# (300 ms): a fatal error. Plenty of time to notice it and end.
FENCE_LIMIT_S = 5.0

# ---------------------------------------------------------------------- the learner's consumer


@contextlib.contextmanager
def workdir(tmp_path):
    """Where child runs keep their record files: memory when there is /dev/shm. process() fsyncs every
    record, and a slow disk would give a commit that is still in flight when the crash comes time to
    land; in memory the crash right after process() comes as soon as a real crash could."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="kata-commit-", dir=shm))
    path.chmod(0o755)  # the learner host may run as another user: it enters this to write its records
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start(impl_path, wd, kafka, topic: str, group: str, name: str, function: str, crash_after=None,
          hold_at=None, eof: bool = True) -> ChildRun:
    """Start the learner's function in a child process. eof=False leaves partition-EOF events off: a run
    whose stop is timed once it is idle, where an EOF event arriving just after the stop would wake a
    poll() with a long timeout and hide it."""
    config = {**CONFIG, "group.instance.id": group + "-member"}  # one static id per group: "the same member"
    if not eof:
        del config["enable.partition.eof"]
    kwargs = {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic, "group_id": group, "config": config}
    members_before = set(group_members(kafka, group, topic) or {})
    run = ChildRun(impl_path, function, kwargs, workdir=wd, crash_after=crash_after, hold_at=hold_at, name=name)
    run.members_before = members_before
    return run


def processed(run: ChildRun, did: str, ends: dict[int, int]) -> list[tuple[int, int]]:
    """(partition, offset) of every record the run's process() received, in order; fails at once when
    process() got something that is not one of the topic's records, or a record altered."""
    out = []
    for rec in run.records():
        if "partition" not in rec:
            run.kill()
            explain(did=did, saw=f"process() was called with {rec.get('value')!r:.120} instead of a message",
                    expected="process(msg) called with the confluent_kafka.Message that poll() returned",
                    seen_in="your process() calls")
        p, o = rec["partition"], rec["offset"]
        if not (0 <= o < ends.get(p, 0)) or rec.get("value") != value_of(p, o):
            run.kill()
            explain(did=did, saw=f"process() was called with a message for partition {p} offset {o} whose value "
                    f"was {rec.get('value')!r:.80}; partition {p} holds records at offsets 0 to "
                    f"{ends.get(p, 0) - 1} only", expected="process() called only with the topic's records",
                    nudge="poll() also returns events that are not records (msg.error() is set, for instance when "
                    "a partition reaches its end). Those are not for process().", seen_in="your process() calls")
        out.append((p, o))
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


ENDED_NUDGE = ("errors from the consumer that are not fatal (a partition reaching its end, for one) are notices: "
               "skip them and keep polling. Only a fatal one (code KafkaError._FATAL) ends the consumer.")


def group_members(kafka, group: str, topic: str) -> dict[str, bool] | None:
    """Member id -> whether it owns partitions of the topic, as the broker shows the group (None when
    the broker did not answer)."""
    try:
        desc = kafka.admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=8)
    except KafkaException:
        return None
    return {m.member_id: any(tp.topic == topic for tp in (m.assignment.topic_partitions if m.assignment else []))
            for m in desc.members}


def wait_records(run: ChildRun, kafka, group: str, topic: str, ends, count: int, did: str) -> list:
    """Wait until the run's process() has received `count` records (or the run crashed as planned).
    Gives up early when the run's consumer has owned partitions for a while without a record."""
    started = time.monotonic()
    assigned_at = None
    old = getattr(run, "members_before", set())  # members of the group before this run started (a killed one)
    while True:
        mine = processed(run, did, ends)
        if len(mine) >= count or run.proc.poll() == -9:
            return mine
        if run.proc.poll() is not None:
            explain(did=did, saw=f"after {len(mine)} process() calls, {ending(run)}",
                    expected="your consumer to keep consuming until it was stopped", nudge=ENDED_NUDGE)
        now = time.monotonic()
        if not mine and assigned_at is None:
            members = group_members(kafka, group, topic) or {}
            if any(owns for m, owns in members.items() if m not in old):
                assigned_at = now
        stalled = False
        if not mine and old and now - started > JOIN_GIVE_UP_S:
            members = group_members(kafka, group, topic)
            stalled = bool(members) and set(members) <= old
        if now - started > DEADLINE_S or stalled or (not mine and (now - started > FIRST_RECORD_S or (
                assigned_at is not None and now - assigned_at > ASSIGNED_IDLE_S))):
            run.kill()
            members = group_members(kafka, group, topic) or {}
            if not mine and old and members and set(members) <= old:
                explain(did=did, saw=f"after {now - started:.0f}s the group still had only the member that was "
                        "killed, and the restarted consumer had not joined it",
                        expected="the restarted consumer to take the killed member's place at once",
                        nudge="a new member waits for a dead one's session to time out, unless it comes with the "
                        "same static member id (group.instance.id). The checks pass one in config: are those "
                        "settings applied on top of yours?")
            explain(did=did, saw=f"after {now - started:.0f}s your consumer had handed {len(mine)} records to "
                    "process()" + (" although the broker showed it owning partitions of the topic" if assigned_at
                                   else ""),
                    expected=f"at least {count} records handed to process()",
                    nudge="does your consumer subscribe to the topic, and start from the earliest offset when the "
                    "group has no committed offset yet?")
        time.sleep(0.05)


def wait_crash(run: ChildRun, kafka, group, topic, ends, crash_after: int, did: str) -> list:
    wait_records(run, kafka, group, topic, ends, crash_after, did)
    if run.wait(10) != -9:
        explain(did=did, saw=f"after {len(run.records())} process() calls, {ending(run)}",
                expected=f"your consumer to keep consuming until it was killed in its {crash_after}th process() call")
    return processed(run, did, ends)


def wait_hold(run: ChildRun, kafka, group, topic, ends, hold_at: int, did: str) -> tuple[int, int]:
    """Wait until the run is inside its hold_at-th process() call; return the record it holds."""
    wait_records(run, kafka, group, topic, ends, hold_at - 1, did)
    deadline = time.monotonic() + DEADLINE_S
    while not run.hold_file.exists():
        if run.proc.poll() is not None:
            explain(did=did, saw=f"after {len(run.records())} process() calls, {ending(run)}",
                    expected=f"your consumer to keep consuming until it was killed in its {hold_at}th process() "
                    "call", nudge=ENDED_NUDGE)
        if time.monotonic() > deadline:
            run.kill()
            explain(did=did, saw=f"your consumer handed {len(run.records())} records to process() and then no more",
                    expected=f"at least {hold_at} records handed to process()")
        time.sleep(0.02)
    held = json.loads(run.hold_file.read_text())
    if "partition" not in held:
        run.kill()
        explain(did=did, saw=f"process() was called with {held.get('not_a_message')} instead of a message",
                expected="process(msg) called with the confluent_kafka.Message that poll() returned")
    return held["partition"], held["offset"]


def watch_while_held(watcher: Committed, partition: int, offset: int, limit: float) -> Offsets:
    """Watch the committed offsets while (partition, offset) is held in process(), until the group
    commits past it or `limit` seconds pass; return the last offsets seen."""
    deadline = time.monotonic() + limit
    seen = watcher.read()
    while time.monotonic() < deadline and (seen.get(partition) or 0) <= offset:
        time.sleep(0.1)
        seen = watcher.read()
    return seen


def stop_in_time(run: ChildRun, did: str, what: str) -> float:
    """Make should_stop() return True and wait for the function to return; fail if it takes longer than
    STOP_LIMIT_S or does not return normally. Returns how long it took."""
    run.stop()
    asked = time.monotonic()
    code = run.wait(STOP_LIMIT_S)
    took = time.monotonic() - asked
    did = did + f", then, {what}, made should_stop() return True"
    if code is None:
        run.kill()
        explain(did=did, saw=f"your function was still running {STOP_LIMIT_S:.1f}s later",
                expected="it to notice within a second (the contract: should_stop() checked at least once a "
                "second), close its consumer and return", seen_in="the clock",
                nudge="how long can your loop go without calling should_stop(): a long poll() timeout? a loop that "
                "only looks at should_stop() when no record arrives?")
    if code != 0:
        explain(did=did, saw=ending(run), expected="your function to close its consumer and return normally",
                nudge=ENDED_NUDGE)
    return took


def finish(run: ChildRun, kafka, group, topic, ends, expected: set, earlier: list, did: str,
           stop: bool = True, own: set | None = None) -> list:
    """Let a run process until every record in `expected` has been processed (by it or by `earlier`
    runs) and it has itself processed `own` (the records from the committed offsets at its start on: it
    is idle then), or until it stops making progress; then (with `stop`) stop it in time. Returns what
    this run processed."""
    wait_records(run, kafka, group, topic, ends, 1, did)
    last_count, last_change = -1, time.monotonic()
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_S:
        mine = processed(run, did, ends)
        if expected <= set(earlier) | set(mine) and (own or set()) <= set(mine):
            break
        if len(mine) != last_count:
            last_count, last_change = len(mine), time.monotonic()
        elif time.monotonic() - last_change > IDLE_S:
            break  # it has gone as far as it will: the caller judges what is missing
        if run.proc.poll() is not None:
            explain(did=did, saw=f"after {len(mine)} process() calls, {ending(run)}",
                    expected="your consumer to keep consuming until should_stop() returns True", nudge=ENDED_NUDGE)
        time.sleep(0.05)
    if stop:
        stop_in_time(run, did, "with every record processed and nothing more to read")
    return processed(run, did, ends)


def fence(old: ChildRun, kafka, group: str, topic: str, did: str) -> str:
    """With `old` idle, join the group with its static group.instance.id from the check: the group takes
    that member id away from `old` (fences it: a fatal error for it), which must then end with an exception.
    Returns what the check did, for the caller's messages."""
    did += (", then joined the group from the check with the same group.instance.id, which takes that place in "
            "the group and fences your consumer")
    fencer = kafka.consumer(group=group, **{"group.instance.id": group + "-member", "session.timeout.ms": 3000,
                                            "heartbeat.interval.ms": 300})
    fencer.subscribe([topic])
    deadline = time.monotonic() + FENCE_LIMIT_S
    while old.proc.poll() is None and time.monotonic() < deadline:
        fencer.poll(0.05)
    code = old.proc.poll()
    if code is None:
        old.kill()
        explain(did=did, saw=f"your fenced consumer was still running {FENCE_LIMIT_S:.0f}s later", seen_in="the clock",
                expected="the fenced consumer to end with an exception: it is a zombie and can no longer commit",
                nudge="poll() reports a fatal error as an event whose msg.error().code() is KafkaError._FATAL (its "
                "fatal() flag is not set). Fatal means this consumer cannot go on.")
    if code == 0 or not old.error():
        explain(did=did, saw=f"your fenced consumer: {ending(old)}",
                expected="the fenced consumer to end with an exception (raise the fatal error)",
                nudge="a fatal error is not a reason to return as if asked to stop: raise it.")
    return did


def duplicates(records: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted(r for r, n in Counter(records).items() if n > 1)


def out_of_order(records: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Records handed to process() before a lower offset of the same partition (within one run)."""
    last: dict[int, int] = {}
    bad = []
    for p, o in records:
        if p in last and o < last[p]:
            bad.append((p, o))
        last[p] = max(o, last.get(p, -1))
    return bad


def committed_while_busy(run: ChildRun, watcher: Committed, ends, did: str, last_too: bool, nudge: str,
                         sample_s: float = 0.6) -> int:
    """While the run is busy, read what process() has received, then the group's committed offsets, again
    and again for `sample_s`. A synchronous commit returns before the next record is taken, so every
    record already followed by another in the records file is committed on the broker by then (with
    last_too, the commit comes before process(), so the last one too). A commit still travelling in the
    background, or saved for later, shows in some sample. Returns how many records were processed."""
    deadline = time.monotonic() + sample_s
    while True:
        records = processed(run, did, ends)
        got = watcher.read()
        done = records if last_too else records[:-1]
        want = {p: max([o + 1 for q, o in done if q == p], default=None) for p in ends}
        behind = [p for p in want if want[p] is not None and (got.get(p) or 0) < want[p]]
        if behind:
            run.kill()
            explain(did=did, saw=f"when process() had received {len(records)} records, up to offsets "
                    f"{show({p: max([o for q, o in records if q == p], default=None) for p in ends})}, the group's "
                    f"committed offsets were {show(got)}",
                    expected=f"committed offsets of at least {show(want)}: each record's commit on the broker before "
                    "the next record is taken", nudge=nudge)
        if time.monotonic() > deadline or run.proc.poll() is not None:
            return len(records)
        time.sleep(0.01)
