"""Events, expected totals and the waiting/reading helpers of kata-12's checks (not shown to learners)."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from grader.kit import ChildRun, explain, wait_for

PARTITIONS = 3
CUSTOMERS = ["cust-ada", "cust-bob", "cust-cyd", "cust-dee", "cust-eli", "cust-fay"]
# Short session timeouts: after a SIGKILL the dead member leaves the group within seconds.
CONSUMER_CONFIG = {"session.timeout.ms": 5000, "heartbeat.interval.ms": 500}


def make_events(seed: int, count: int, first: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return [{"event_id": f"ev-{n:04d}", "type": "order_placed", "order_id": f"o-{n:04d}",
             "customer": rng.choice(CUSTOMERS), "amount": rng.choice([5, 10, 15, 25, 40, 60])}
            for n in range(first, first + count)]


def expected_totals(events: list[dict]) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for e in events:
        orders, amount = totals.get(e["customer"], (0, 0))
        totals[e["customer"]] = (orders + 1, amount + e["amount"])
    return totals


def produce(kafka, topic: str, events: list[dict]) -> dict[int, int]:
    """Produce the events keyed by customer; return the topic's end offsets afterwards."""
    kafka.produce(topic, [(e["customer"], json.dumps(e)) for e in events])
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


def start(impl_path, tmp_path, kafka, topic: str, group: str, db_path: Path, crash_after: int | None = None,
          name: str = "projector") -> ChildRun:
    return ChildRun(impl_path, "run_projector",
                    {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic, "group_id": group,
                     "db_path": str(db_path), "consumer_config": CONSUMER_CONFIG},
                    workdir=tmp_path, crash_after=crash_after, name=name)


def died(run: ChildRun, did: str) -> None:
    """Fail with what the learner's process said, if it ended on its own."""
    err = run.error()
    saw = (f"run_projector raised {err['type']}: {err['message']}" if err
           else f"run_projector ended (exit code {run.proc.returncode}) before it was asked to stop")
    explain(did=did, saw=saw + (f"\n{err['traceback'][-800:]}" if err and err["type"] != "NotImplementedError"
                                else ""),
            expected="it to keep consuming until should_stop() returns True")


def wait_caught_up(kafka, run: ChildRun, group: str, topic: str, ends: dict[int, int], did: str,
                   timeout: float = 60) -> None:
    """Wait until the group's committed offsets reach `ends`; fail early if the projector dies."""
    last: dict[int, int] = {}

    def caught_up() -> bool:
        nonlocal last
        if run.proc.poll() is not None:
            died(run, did)
        last = committed(kafka, group, topic)
        return all(last.get(p, -1) >= end for p, end in ends.items() if end > 0)

    try:
        wait_for(caught_up, timeout, "the projector to commit every offset", interval=0.3)
    except BaseException:
        if run.proc.poll() is None:
            explain(did=did, saw=f"after {timeout:.0f}s the group {group}'s committed offsets are {last}; "
                    f"the topic ends at {ends} ({len(run.records())} events passed to process())",
                    expected="the projector to consume every event and commit its offset (skipped ones too)",
                    nudge="does your projector commit after each event, and does it add consumer_config to its "
                    "settings (a crashed member holds its partitions until its session times out)?")
        raise


def stop(run: ChildRun, did: str) -> None:
    run.stop()
    code = run.wait(timeout=30)
    if code is None:
        run.kill()
        explain(did=did + ", then asked it to stop (should_stop() returned True)",
                saw="it was still running 30s later", expected="run_projector to return within a second or two",
                nudge="check should_stop() at least once a second, also when no message arrives.")
    if code != 0:
        died(run, did)


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


def compare_totals(got: dict, want: dict) -> str:
    parts = []
    for c in sorted(set(got) | set(want)):
        if got.get(c) != want.get(c):
            g, w = got.get(c, (0, 0)), want.get(c, (0, 0))
            parts.append(f"{c}: {g[0]} orders / {g[1]} (expected {w[0]} / {w[1]})")
    return "; ".join(parts[:4]) + (f" (and {len(parts) - 4} more)" if len(parts) > 4 else "")
