"""Hidden checks for kata-12 (CQRS projection into SQLite: idempotent apply, lag). Never shown to learners."""

import pytest
from _kata12_support import (
    PARTITIONS,
    compare_totals,
    crash,
    expected_totals,
    make_events,
    produce,
    read_totals,
    rewind,
    start,
    stop,
    wait_caught_up,
)

from grader.kit import explain


@pytest.fixture
def setup(kafka, tmp_path):
    topic = kafka.create_topic(partitions=PARTITIONS)
    return topic, kafka.unique("projector"), tmp_path / "read_model.db"


def lag_of(impl, kafka, topic, group, db_path, did):
    try:
        lag = impl.projection_lag(kafka.bootstrap_servers, topic, group, str(db_path))
    except NotImplementedError as exc:
        explain(did=did, saw=f"NotImplementedError: {exc}", expected="projection_lag to be implemented")
    except Exception as exc:  # the learner's code failed: say so in their terms
        explain(did=did, saw=f"projection_lag raised {type(exc).__name__}: {exc}", expected="a dict partition -> lag")
    if not isinstance(lag, dict):
        explain(did=did, saw=f"projection_lag returned {lag!r:.80}", expected="a dict {partition: lag}")
    return {int(p): v for p, v in lag.items()}


def test_read_model_matches_the_events(kafka, impl, impl_path, tmp_path, setup):
    """A clean run builds the right totals, commits every offset and reports a lag of 0."""
    topic, group, db_path = setup
    events = make_events(seed=12, count=30)
    ends = produce(kafka, topic, events)
    did = (f"produced {len(events)} order events to a {PARTITIONS}-partition topic, ran run_projector until the "
           "group had committed every offset, then stopped it")
    run = start(impl_path, tmp_path, kafka, topic, group, db_path)
    try:
        wait_caught_up(kafka, run, group, topic, ends, did)
        stop(run, did)
    finally:
        run.close()
    got, want = read_totals(db_path, did), expected_totals(events)
    if got != want:
        explain(did=did + ", then read customer_totals", saw=compare_totals(got, want),
                expected="each event counted once: orders + 1 and amount + the event's amount for its customer",
                nudge="compare the event fields with the table's columns.")
    if len(run.records()) != len(events):
        explain(did=did, saw=f"process() was called {len(run.records())} times",
                expected=f"{len(events)} calls, one per event applied")
    lag = lag_of(impl, kafka, topic, group, db_path, did + ", then called projection_lag")
    if lag != {p: 0 for p in range(PARTITIONS)}:
        explain(did=did + ", then called projection_lag", saw=f"{lag}",
                expected=f"{ {p: 0 for p in range(PARTITIONS)} }: every record of every partition is applied")


def test_crash_between_write_and_commit_applies_once(kafka, impl_path, tmp_path, setup):
    """Killed after the SQLite write and before the Kafka commit, the restarted projector counts each event once."""
    topic, group, db_path = setup
    events = make_events(seed=21, count=30)
    ends = produce(kafka, topic, events)
    crash_at = 12
    did = (f"produced {len(events)} events, ran run_projector and SIGKILLed it right after process() returned for "
           f"event #{crash_at} (in SQLite, not yet committed to Kafka), then started it again until every offset "
           "was committed")
    first = start(impl_path, tmp_path, kafka, topic, group, db_path, crash_after=crash_at, name="crashing")
    try:
        crash(first, crash_at, did)
    finally:
        first.close()
    second = start(impl_path, tmp_path, kafka, topic, group, db_path, name="restarted")
    try:
        wait_caught_up(kafka, second, group, topic, ends, did)
        stop(second, did)
    finally:
        second.close()
    got, want = read_totals(db_path, did), expected_totals(events)
    if got != want:
        again = sorted({(r["partition"], r["offset"]) for r in first.records()}
                       & {(r["partition"], r["offset"]) for r in second.records()})
        twice = f"; applied twice: (partition, offset) {again[:3]}" if again else ""
        explain(did=did, saw=compare_totals(got, want) + f"; process() ran {len(first.records())} + "
                f"{len(second.records())} times (events: {len(events)}){twice}",
                expected="every event counted exactly once",
                nudge="Kafka redelivers what was not committed. How can the database itself tell that it already "
                "holds an event, after a restart?")


def test_rewound_group_does_not_double_apply(kafka, impl_path, tmp_path, setup):
    """After the group is rewound to offset 0, old events are not counted again and new ones are."""
    topic, group, db_path = setup
    events = make_events(seed=31, count=24)
    ends = produce(kafka, topic, events)
    did = f"ran run_projector over {len(events)} events and stopped it"
    run = start(impl_path, tmp_path, kafka, topic, group, db_path, name="first")
    try:
        wait_caught_up(kafka, run, group, topic, ends, did)
        stop(run, did)
    finally:
        run.close()
    rewind(kafka, group, topic)
    more = make_events(seed=32, count=6, first=len(events) + 1)
    ends = produce(kafka, topic, more)
    did += (f", rewound the group's committed offsets to 0, produced {len(more)} new events and ran run_projector "
            "again until every offset was committed")
    run = start(impl_path, tmp_path, kafka, topic, group, db_path, name="rewound")
    try:
        wait_caught_up(kafka, run, group, topic, ends, did)
        stop(run, did)
    finally:
        run.close()
    got, want = read_totals(db_path, did), expected_totals(events + more)
    if got != want:
        explain(did=did, saw=compare_totals(got, want) + f"; the restarted projector applied {len(run.records())} "
                f"events", expected=f"every event counted once: only the {len(more)} new ones applied after the rewind",
                nudge="a restarted process remembers nothing it kept in memory. Where is the proof that an event "
                "is already in the read model?")


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
    ends = produce(kafka, topic, make_events(seed=42, count=6, first=len(events) + 1))
    applied = {p: 0 for p in range(PARTITIONS)}
    for r in run.records():
        applied[r["partition"]] = max(applied[r["partition"]], r["offset"] + 1)
    want = {p: ends[p] - applied[p] for p in range(PARTITIONS)}
    did += f", produced 6 more (the topic now ends at {ends}), then called projection_lag"
    lag = lag_of(impl, kafka, topic, group, db_path, did)
    if lag != want:
        explain(did=did, saw=f"{lag}",
                expected=f"{want}: per partition, the end offset minus what the read model applied "
                f"({applied}, as process() reported)",
                nudge="after the crash, two places record progress: the database and the group's commits. Which "
                "one describes the read model?")
