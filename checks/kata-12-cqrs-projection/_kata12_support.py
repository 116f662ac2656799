"""Events, expected totals and the waiting/reading helpers of kata-12's checks (not shown to learners)."""

from __future__ import annotations

import json
import random
import sqlite3
import time
import uuid
from pathlib import Path

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition

from grader.kit import ChildRun, explain

PARTITIONS = 4  # not the README's 3; the checks place customers themselves (below)
CUSTOMERS = ["cust-ada", "cust-bob", "cust-cyd", "cust-dee", "cust-eli", "cust-fay"]
LATE_CUSTOMER = "cust-zoë"  # the only customer of partition 3, which stays empty until a check writes there
PARTITION_OF = {**{c: n % 3 for n, c in enumerate(CUSTOMERS)}, LATE_CUSTOMER: 3}
STOP_WITHIN_S = 3.5  # should_stop() at least once a second, then close: the solution needs about 1 s
STOP_GAP_S = 2.0  # the longest gap between two should_stop() calls: once a second, with slack for a busy machine


def consumer_config() -> dict:
    """What the checks pass as consumer_config, all of which the projector must use.

    Short sessions: after a SIGKILL the dead member leaves the group within 2 s. A client.id the
    check can see in the group's description. A short auto-commit interval: a projector that lets
    the consumer auto-commit shows it at once.
    """
    return {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500, "auto.commit.interval.ms": 100,
            "client.id": f"kata12-projector-{uuid.uuid4().hex[:8]}"}


def make_events(seed: int, count: int, first: int = 1, customers=tuple(CUSTOMERS)) -> list[dict]:
    rng = random.Random(seed)
    return [{"event_id": f"ev-{n:04d}", "type": "order_placed", "order_id": f"o-{n:04d}",
             "customer": rng.choice(customers), "amount": rng.choice([5, 10, 15, 25, 40, 60])}
            for n in range(first, first + count)]


def expected_totals(events: list[dict]) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for e in events:
        orders, amount = totals.get(e["customer"], (0, 0))
        totals[e["customer"]] = (orders + 1, amount + e["amount"])
    return totals


def produce(kafka, topic: str, events: list[dict]) -> dict[int, int]:
    """Produce the events keyed by customer, each customer on its own partition; return the end offsets after."""
    producer = kafka.producer()  # one flush, no retries expected: no need for an idempotent producer's start-up
    for e in events:
        producer.produce(topic, key=e["customer"].encode(), value=json.dumps(e, ensure_ascii=False).encode(),
                         partition=PARTITION_OF[e["customer"]])
    if producer.flush(30):
        raise RuntimeError(f"test events were not delivered to {topic}")
    return end_offsets(kafka, topic)


def end_offsets(kafka, topic: str) -> dict[int, int]:
    consumer = kafka.consumer()
    return {p: kafka.high_watermark(consumer, topic, p) for p in range(PARTITIONS)}


def committed(kafka, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets as the broker reports them (-1: none)."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = kafka.admin.list_consumer_group_offsets([request])[group].result(timeout=10)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def rewind(kafka, group: str, topic: str) -> None:
    """Set the (empty) group's committed offsets back to 0 on every partition."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    kafka.admin.alter_consumer_group_offsets([request])[group].result(timeout=10)


def group_state(kafka, group: str):
    """(state, client ids of the members) of a group, as the broker describes it."""
    description = kafka.admin.describe_consumer_groups([group])[group].result(timeout=10)
    return description.state, sorted(m.client_id for m in description.members)


def start(impl_path, tmp_path, kafka, topic: str, group: str, db_path: Path, crash_after: int | None = None,
          name: str = "projector", hold_at: int | None = None, config: dict | None = None,
          crash_after_db_commit: int | None = None) -> ChildRun:
    return ChildRun(impl_path, "run_projector",
                    {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic, "group_id": group,
                     "db_path": str(db_path), "consumer_config": config or consumer_config()},
                    workdir=tmp_path, crash_after=crash_after, name=name, hold_at=hold_at,
                    crash_after_db_commit=crash_after_db_commit)


def run_to_the_end(impl_path, tmp_path, kafka, topic: str, group: str, db_path: Path, ends: dict[int, int],
                   did: str, name: str) -> ChildRun:
    """Run the projector until the group has committed `ends`, then stop it (timed) and return the run."""
    run = start(impl_path, tmp_path, kafka, topic, group, db_path, name=name)
    try:
        wait_caught_up(kafka, run, group, topic, ends, did)
        stop(run, did)
    finally:
        run.close()
    return run


def died(run: ChildRun, did: str) -> None:
    """Fail with what the learner's process said, if it ended on its own."""
    err = run.error()
    saw = (f"run_projector raised {err['type']}: {err['message']}" if err
           else f"run_projector ended (exit code {run.proc.returncode}) before it was asked to stop")
    explain(did=did, saw=saw + (f"\n{err['traceback'][-800:]}" if err and err["type"] != "NotImplementedError"
                                else ""),
            expected="it to keep consuming until should_stop() returns True", seen_in="your function")


def wait_caught_up(kafka, run: ChildRun, group: str, topic: str, ends: dict[int, int], did: str,
                   timeout: float = 60, stall: float = 15) -> None:
    """Wait until the group's committed offsets reach `ends`; fail early if the projector dies or stalls."""
    deadline = time.monotonic() + timeout
    last: dict[int, int] = {}
    progress = (None, None)
    progress_at = time.monotonic()
    while True:
        if run.proc.poll() is not None:
            died(run, did)
        last = committed(kafka, group, topic)
        if all(last.get(p, -1) >= end for p, end in ends.items() if end > 0):
            return
        now = time.monotonic()
        seen = (tuple(sorted(last.items())), len(run.records()))
        if seen != progress:
            progress, progress_at = seen, now
        # Every event reached process() but the commits stopped short: no point waiting the full stall.
        if now > deadline or now - progress_at > (6 if seen[1] else stall):
            break
        time.sleep(0.2)
    processed = len(run.records())
    explain(did=did, saw=f"the group {group}'s committed offsets are {last} and have not moved for "
            f"{now - progress_at:.0f}s; the topic ends at {ends} ({processed} events passed to process())",
            expected="the projector to consume every event and commit its offset (skipped ones too): the "
            "committed offset of a partition is the offset of the next event to read",
            nudge=("process() saw events, so they were consumed: what does your projector commit, and when? "
                   "A committed offset names the next record, not the last one." if processed else
                   "nothing reached process(). Where does a new group start reading (auto.offset.reset), and "
                   "does your consumer use consumer_config (a crashed member holds its partitions until its "
                   "session times out)?"))


def stop(run: ChildRun, did: str) -> None:
    run.stop()
    asked = time.monotonic()
    code = run.wait(timeout=STOP_WITHIN_S)
    took = time.monotonic() - asked
    if code is None:
        run.kill()
    if code is None or took > STOP_WITHIN_S:
        explain(did=did + ", then asked it to stop (should_stop() returned True)",
                saw=f"it was still running {STOP_WITHIN_S:.1f}s later" if code is None else
                f"it took {took:.1f}s to return",
                expected=f"run_projector to return within {STOP_WITHIN_S:.1f}s (should_stop() checked at least "
                "once a second, then the consumer closed)", seen_in="your function",
                nudge="check should_stop() at least once a second, also when no message arrives: how long can "
                "your poll() wait?")
    if code != 0:
        died(run, did)
    gap = run.max_stop_gap()
    if gap > STOP_GAP_S:
        explain(did=did + ", timing the calls of should_stop() while it ran", seen_in="your function",
                saw=f"your code went {gap:.1f}s without calling should_stop()",
                expected=f"should_stop() checked at least once a second, also while no event arrives (at most "
                f"{STOP_GAP_S:.1f}s apart, with room for a busy machine)",
                nudge="how long can your poll() wait when the topic is idle?")


def crash(run: ChildRun, n: int, did: str) -> None:
    code = run.wait(timeout=60)
    if code is None:
        run.kill()
        explain(did=did, saw=f"process() was called {len(run.records())} times in 60s",
                expected=f"process() to be called for {n} events (the check kills the projector right after)",
                nudge="call process(msg) once for every event you applied, after the transaction committed.")
    if not run.crashed_as_planned:
        died(run, did)


def read_totals(db_path: Path, did: str) -> dict[str, tuple[int, int]]:
    if not db_path.exists():
        explain(did=did, saw=f"no database at {db_path.name}", expected="run_projector to create it")
    db = sqlite3.connect(str(db_path), timeout=30)
    try:
        rows = db.execute("SELECT customer, orders, amount FROM customer_totals").fetchall()
    except sqlite3.Error as exc:
        explain(did=did, saw=f"reading customer_totals failed: {exc}",
                expected="the table customer_totals (customer TEXT PRIMARY KEY, orders INTEGER, amount INTEGER)")
    finally:
        db.close()
    return {c: (o, a) for c, o, a in rows}


def expect_empty_group(kafka, group: str, did: str) -> None:
    """After run_projector returned, its consumer has left the group (closed, not just dropped)."""
    state, members = group_state(kafka, group)
    if members or state not in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
        explain(did=did + ", then described the group", saw=f"state {state.name}, members {members}",
                expected="an empty group: run_projector closes its consumer before returning, which leaves the "
                "group at once", nudge="consumer.close() leaves the group; without it the broker waits for the "
                "member's session to time out before others get its partitions.")


def compare_totals(got: dict, want: dict) -> str:
    parts = []
    for c in sorted(set(got) | set(want)):
        if got.get(c) != want.get(c):
            g, w = got.get(c, (0, 0)), want.get(c, (0, 0))
            parts.append(f"{c}: {g[0]} orders / {g[1]} (expected {w[0]} / {w[1]})")
    return "; ".join(parts[:4]) + (f" (and {len(parts) - 4} more)" if len(parts) > 4 else "")
