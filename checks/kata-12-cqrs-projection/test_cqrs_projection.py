"""Hidden checks for kata-12 (CQRS projection into SQLite: idempotent apply, lag). Never shown to learners."""

import json
import sqlite3
import threading
import time
from contextlib import closing

import pytest
from _kata12_support import (
    LATE_CUSTOMER,
    PARTITIONS,
    committed,
    compare_totals,
    consumer_config,
    crash,
    died,
    expect_empty_group,
    expected_totals,
    group_state,
    make_events,
    produce,
    read_totals,
    rewind,
    run_to_the_end,
    start,
    stop,
    wait_caught_up,
)

from grader.kit import explain, wait_for

RETURN_WITHIN_S = 15.0  # projection_lag reads a table and a few watermarks: well under a second


@pytest.fixture
def setup(kafka, tmp_path):
    topic = kafka.create_topic(partitions=PARTITIONS)
    return topic, kafka.unique("projector"), tmp_path / "read_model.db"


def lag_of(impl, kafka, topic, group, db_path, did):
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["lag"] = impl.projection_lag(kafka.bootstrap_servers, topic, group, str(db_path))
        except BaseException as exc:  # noqa: BLE001 - reported below in the learner's terms
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(RETURN_WITHIN_S)
    if worker.is_alive():
        explain(did=did, saw=f"projection_lag had not returned after {RETURN_WITHIN_S:.0f}s",
                expected="a dict partition -> lag, at once", seen_in="your function",
                nudge="lag needs no consuming: the read model's stored offsets and each partition's high watermark.")
    exc = outcome.get("error")
    if isinstance(exc, NotImplementedError):
        explain(did=did, saw=f"NotImplementedError: {exc}", expected="projection_lag to be implemented",
                seen_in="your function")
    if exc is not None:
        explain(did=did, saw=f"projection_lag raised {type(exc).__name__}: {exc}", expected="a dict partition -> lag",
                seen_in="your function")
    lag = outcome.get("lag")
    if not isinstance(lag, dict):
        explain(did=did, saw=f"projection_lag returned {lag!r:.80}", expected="a dict {partition: lag}",
                seen_in="your function's return value")
    return {int(p): v for p, v in lag.items()}


def positions(records) -> list[tuple[int, int]]:
    return [(r["partition"], r["offset"]) for r in records]


def test_read_model_matches_the_events(kafka, impl, impl_path, tmp_path, setup):
    """A clean run builds the right totals, commits every offset, stops promptly and reports a lag of 0.

    Also: process() once per event, consumer_config used (client.id), the group left when it returns,
    and every partition in the lag, an empty one too.
    """
    topic, group, db_path = setup
    events = make_events(seed=12, count=30)
    ends = produce(kafka, topic, events[:20])
    config = consumer_config()
    did = (f"produced 20 order events to partitions 0-2 of a {PARTITIONS}-partition topic (3 stays "
           f"empty), ran run_projector (consumer_config={config}) until the group had committed every offset")
    run = start(impl_path, tmp_path, kafka, topic, group, db_path, config=config)
    try:
        wait_caught_up(kafka, run, group, topic, ends, did)
        # The query side reads the read model while the projector writes: hold a read
        # transaction while 10 more events arrive; the projector's writes must wait, not fail.
        with closing(sqlite3.connect(str(db_path), timeout=30, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM customer_totals").fetchone()
            ends = produce(kafka, topic, events[20:])
            time.sleep(1.0)  # the hold itself (not a wait for a condition): a reader that takes its time
            reader.execute("COMMIT")
        run.reset_stop_gap()  # that hold blocked the projector's write on purpose: time should_stop() from here
        did = did.replace("produced 20", f"produced {len(events)}") + (", 10 of them while a reader of the "
                                                                        "database held a read transaction for 1 s")
        wait_caught_up(kafka, run, group, topic, ends, did)
        members: list = []
        deadline = time.monotonic() + 5  # a rebalance under load may hide the member for a moment
        while members != [config["client.id"]] and time.monotonic() < deadline:
            members = group_state(kafka, group)[1]
            if members != [config["client.id"]]:
                time.sleep(0.2)
        if members != [config["client.id"]]:
            explain(did=did + ", then described the group", saw=f"members with client ids {members}",
                    expected=f"one member, client id {config['client.id']!r} (from consumer_config)",
                    nudge="add every entry of consumer_config to your consumer's configuration.")
        stop(run, did)
    finally:
        run.close()
    did += ", then stopped it"
    expect_empty_group(kafka, group, did)
    got, want = read_totals(db_path, did), expected_totals(events)
    if got != want:
        explain(did=did + ", then read customer_totals", saw=compare_totals(got, want),
                expected="each event counted once: orders + 1 and amount + the event's amount for its customer",
                seen_in="the database",
                nudge="compare the event fields with the table's columns. Is every transaction committed?")
    seen = positions(run.records())
    if sorted(seen) != sorted((p, o) for p, end in ends.items() for o in range(end)):
        explain(did=did, saw=f"process() was called {len(seen)} times, for {len(set(seen))} different events",
                expected=f"{len(events)} calls, one per event applied", seen_in="the calls of process()")
    lag = lag_of(impl, kafka, topic, group, db_path, did + ", then called projection_lag")
    if lag != {p: 0 for p in range(PARTITIONS)}:
        explain(did=did + ", then called projection_lag", saw=f"{lag}", seen_in="your function's return value",
                expected=f"{ {p: 0 for p in range(PARTITIONS)} }: every record of every partition is applied, "
                "and an empty partition has nothing to apply")


def test_lag_of_an_empty_read_model(kafka, impl, tmp_path, setup):
    """Before the projector ever ran (no database yet), projection_lag counts every record of every partition."""
    topic, group, db_path = setup
    ends = produce(kafka, topic, make_events(seed=7, count=9))
    did = f"produced 9 events (the topic ends at {ends}), then called projection_lag with a database path that " \
          "does not exist yet"
    lag = lag_of(impl, kafka, topic, group, db_path, did)
    if lag != ends:
        explain(did=did, saw=f"{lag}", expected=f"{ends}: nothing is applied yet, on any partition",
                seen_in="your function's return value",
                nudge="a partition the read model has never seen is behind by all of its records.")


def test_crash_between_write_and_commit_applies_once(kafka, impl_path, tmp_path, setup):
    """Killed after the SQLite write and before the Kafka commit, the restarted projector counts each event once."""
    topic, group, db_path = setup
    events = make_events(seed=21, count=30)
    ends = produce(kafka, topic, events)
    hold_at = 12
    did = (f"produced {len(events)} events, ran run_projector and held it inside process() for event #{hold_at} "
           "(in SQLite, not yet committed to Kafka)")
    first = start(impl_path, tmp_path, kafka, topic, group, db_path, hold_at=hold_at, name="held")
    try:
        wait_for(lambda: first.hold_file.exists() or first.proc.poll() is not None, 60,
                 f"process() to be called for event #{hold_at}")
        if not first.hold_file.exists():
            crash(first, hold_at, did)  # it ended on its own: say how
        held = json.loads(first.hold_file.read_text())
        # Nothing may commit the held event while process() runs (auto-commit would, within 100 ms).
        time.sleep(0.5)
        done = committed(kafka, group, topic)
        processed = {}
        for p, o in positions(first.records()):
            processed[p] = max(processed.get(p, 0), o + 1)
        ahead = {p: o for p, o in done.items() if o > processed.get(p, 0) and o > 0}
        if ahead:
            explain(did=did + ", and looked at the group's committed offsets meanwhile",
                    saw=f"committed {done} while process() had returned only up to {processed} and was still "
                    f"running for partition {held['partition']} offset {held['offset']}",
                    expected="no offset committed past an event whose process() has not returned",
                    nudge="the commit says 'done with this event'. What if the process dies before the read model "
                    "and process() are through? Commit it yourself, after process(), and only then.")
    finally:
        first.close()
    did = did.replace("held it", "SIGKILLed it while it was held") + ", then started it again until every " \
        "offset was committed"
    second = run_to_the_end(impl_path, tmp_path, kafka, topic, group, db_path, ends, did, "restarted")
    got, want = read_totals(db_path, did), expected_totals(events)
    before, after = positions(first.records()) + [(held["partition"], held["offset"])], positions(second.records())
    if got != want:
        again = sorted(set(before) & set(after))
        twice = f"; applied twice: (partition, offset) {again[:3]}" if again else ""
        explain(did=did, saw=compare_totals(got, want) + f"; process() ran {len(before)} + {len(after)} times "
                f"(events: {len(events)}){twice}", expected="every event counted exactly once", seen_in="the database",
                nudge="Kafka redelivers what was not committed. How can the database itself tell that it already "
                "holds an event, after a restart?")
    if sorted(before + after) != sorted((p, o) for p, end in ends.items() for o in range(end)):
        again = sorted(set(before) & set(after))
        explain(did=did, saw=f"process() ran for {len(before)} events before the crash and {len(after)} after"
                + (f", again for (partition, offset) {again[:3]}" if again else ""),
                expected=f"{len(events)} calls in all: process() once per event applied, never for an event the "
                "read model skipped as already applied", seen_in="the calls of process()")


def test_crash_right_after_a_sqlite_commit_applies_once(kafka, impl_path, tmp_path, setup):
    """Killed right after one of its SQLite transactions commits, the restarted projector counts each event once.

    The crash comes at the first statement after the N-th transaction that changed rows (N odd): between an
    event's totals and its proof of application when they are committed apart, in either order.
    """
    topic, group, db_path = setup
    events = make_events(seed=51, count=24)
    ends = produce(kafka, topic, events)
    after = 9
    did = (f"produced {len(events)} events, ran run_projector and SIGKILLed it the moment your code went on after "
           f"its {after}th SQLite transaction that changed rows had committed")
    first = start(impl_path, tmp_path, kafka, topic, group, db_path, name="db-crash", crash_after_db_commit=after)
    try:
        code = first.wait(timeout=60)
        if code is None or first.db_crash() is None:
            if code is not None and not first.crashed_as_planned:
                died(first, did)
            explain(did=did.replace("SIGKILLed it", "waited 60 s to SIGKILL it"),
                    saw=f"{'it was still running' if code is None else f'it exited with code {code}'} and had not "
                    f"committed {after} SQLite transactions that changed rows; process() was called "
                    f"{len(first.records())} times", seen_in="the database",
                    expected=f"one committed transaction per event applied, {after} of them within seconds",
                    nudge="is each event's write committed (with db: or COMMIT) before you go on to the next one?")
        crash_point = first.db_crash()
    finally:
        first.close()
    did += f" (it was about to run {crash_point['next']}), then started it again until every offset was committed"
    second = run_to_the_end(impl_path, tmp_path, kafka, topic, group, db_path, ends, did, "after-db-crash")
    got, want = read_totals(db_path, did), expected_totals(events)
    if got != want:
        counted = sum(o for o, _ in got.values())
        explain(did=did, seen_in="the database",
                saw=compare_totals(got, want) + f"; {counted} orders counted for {len(events)} events",
                expected="every event counted exactly once: whatever a crash interrupts, an event's totals and the "
                "record that it was applied are committed together or not at all",
                nudge=("one event is counted twice: its totals were committed, the proof that it was applied was "
                       "not yet, so the redelivered event looked new." if counted > len(events) else
                       "an event is missing: the proof that it was applied was committed before its totals, so the "
                       "redelivered event was skipped." if counted < len(events) else
                       "the counts add up but the amounts do not: compare each event's fields with the columns.")
                + " Are the totals and the stored offset (or event id) written in one transaction?")
    before, after_restart = positions(first.records()), positions(second.records())
    again = sorted(set(before) & set(after_restart))
    if again or len(after_restart) != len(set(after_restart)):
        explain(did=did, saw=f"process() ran again after the restart for (partition, offset) {again[:3]}",
                expected="process() never called twice for one event: the restarted projector skips what the read "
                "model already holds", seen_in="the calls of process()")


def test_rewound_group_does_not_double_apply(kafka, impl_path, tmp_path, setup):
    """After the group is rewound to offset 0, old events are not counted again and new ones are."""
    topic, group, db_path = setup
    events = make_events(seed=31, count=24)
    ends = produce(kafka, topic, events)
    did = f"ran run_projector over {len(events)} events and stopped it"
    run = run_to_the_end(impl_path, tmp_path, kafka, topic, group, db_path, ends, did, "first")
    rewind(kafka, group, topic)
    more = make_events(seed=32, count=6, first=len(events) + 1)
    ends = produce(kafka, topic, more)
    did += (f", rewound the group's committed offsets to 0, produced {len(more)} new events and ran run_projector "
            "again until every offset was committed")
    run = run_to_the_end(impl_path, tmp_path, kafka, topic, group, db_path, ends, did, "rewound")
    got, want = read_totals(db_path, did), expected_totals(events + more)
    if got != want:
        explain(did=did, saw=compare_totals(got, want) + f"; the restarted projector applied {len(run.records())} "
                f"events", expected=f"every event counted once: only the {len(more)} new ones applied after the rewind",
                seen_in="the database",
                nudge="a restarted process remembers nothing it kept in memory. Where is the proof that an event "
                "is already in the read model?")
    if len(run.records()) != len(more):
        explain(did=did, saw=f"the restarted projector called process() {len(run.records())} times",
                expected=f"{len(more)} calls: only for the new events; the redelivered old ones were skipped",
                seen_in="the calls of process()", nudge="call process() only for an event you applied.")


def test_lag_counts_what_the_read_model_applied(kafka, impl, impl_path, tmp_path, setup):
    """After a crash and new events, projection_lag counts exactly the records the read model has not applied."""
    topic, group, db_path = setup
    events = make_events(seed=41, count=24)
    produce(kafka, topic, events)
    crash_at = 10
    run = start(impl_path, tmp_path, kafka, topic, group, db_path, crash_after=crash_at, name="crashing")
    did = (f"produced {len(events)} events, SIGKILLed run_projector right after process() returned for event "
           f"#{crash_at} (in SQLite, not yet committed to Kafka)")
    try:
        crash(run, crash_at, did)
    finally:
        run.close()
    # New events, among them the first ones of partition 3, which the read model has never seen.
    more = make_events(seed=42, count=6, first=len(events) + 1, customers=("cust-ada", LATE_CUSTOMER))
    ends = produce(kafka, topic, more)
    applied = {p: 0 for p in range(PARTITIONS)}
    for p, o in positions(run.records()):
        applied[p] = max(applied[p], o + 1)
    want = {p: ends[p] - applied[p] for p in range(PARTITIONS)}
    did += f", produced {len(more)} more (the topic now ends at {ends}), then called projection_lag"
    lag = lag_of(impl, kafka, topic, group, db_path, did)
    if lag != want:
        explain(did=did, saw=f"{lag}", seen_in="your function's return value",
                expected=f"{want}: per partition, the end offset minus what the read model applied "
                f"({applied}, as process() reported)",
                nudge="after the crash, two places record progress: the database and the group's commits. Which "
                "one describes the read model? Every partition counts, one the read model never saw too.")
