"""Hidden checks for kata-18 (exactly-once sink). Never shown to learners.

The learner's run_sink() runs in its own process (grader.kit.ChildRun). The checks read its
sqlite database the way any other program would, ask the broker what the group has committed,
kill the sink with SIGKILL in the middle of a record, and hand it a database restored from a
backup while Kafka's committed offsets say something else.
"""


import pytest
from _kata18_support import (
    ARCHIVED_OFFSETS,
    ARCHIVED_ROW,
    PARTITIONS,
    Stream,
    append_payments,
    call_text,
    db_offsets,
    db_rows,
    member_joins_and_leaves,
    produce_payments,
    restore_database,
    settle,
    start_sink,
    stop_watch,
    wait_for_crash,
    wait_for_hold,
    wait_for_rows,
    write_lock_free,
)
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from grader.kit import KafkaKit, explain

PER_PARTITION = 12
MORE_PER_PARTITION = 2  # produced after the plain run's rebalance
RETAINED_FROM = 6  # partition 0's log start offset in the restore check


@pytest.fixture(scope="module")
def plain_run(bootstrap_servers, impl_path, pytestconfig, tmp_path_factory):
    """One uninterrupted run of the sink over a fresh topic, shared by the first three checks."""
    run_id = pytestconfig.getoption("--kata-run-id") or "local"
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{run_id}-k18")
    workdir = tmp_path_factory.mktemp("plain")
    db_path = workdir / "sink.db"
    stream = produce_payments(kit, PER_PARTITION, "plain")
    first = len(stream.payments)
    did = (f"produced {first} payments over {PARTITIONS} partitions, ran {call_text(db_path)} in its own process "
           "until the database held them; then another member joined the sink's group and left again (the sink "
           f"lost partitions and got them back), {MORE_PER_PARTITION * PARTITIONS} more payments were produced, "
           "and the sink ran until the database held every payment")
    watched, events = stop_watch(impl_path, workdir, "plain")
    run = start_sink(watched, workdir, kit, stream, db_path)
    outcome = {"stream": stream, "db_path": db_path, "did": did, "failure": None}
    try:
        try:
            # Every assignment must start where the database says *then*, not where it said at start-up.
            wait_for_rows(run, db_path, stream)
            member_joins_and_leaves(kit, stream)
            append_payments(kit, stream, MORE_PER_PARTITION)
            outcome["tally"] = settle(run, db_path, stream, did, events=events)
        except BaseException as exc:  # settle() explained a failure: every check of this run reports it
            outcome["failure"] = exc
        outcome["committed"] = kit.committed(stream.group, stream.topic)
        yield outcome
    finally:
        run.close()
        kit.close()


def _require(outcome):
    if outcome["failure"] is not None:
        raise outcome["failure"]


def test_every_payment_becomes_one_row(plain_run):
    """Every payment consumed becomes exactly one row in the payments table."""
    _require(plain_run)
    tally = plain_run["tally"]
    if tally.missing or tally.duplicated or tally.unknown:
        explain(did=plain_run["did"], saw=tally.describe(),
                expected=f"{len(tally.expected)} rows, one per payment, with the payment's account and amount",
                nudge="payments written twice after the sink got its partitions back: on_assign runs at every "
                "rebalance, and each time the database may have moved on. Does the sink read the stored offsets "
                "when partitions are assigned, or only once at start-up?" if tally.duplicated and not
                tally.missing else "every record's value is the JSON of one payment; does the sink insert one "
                "row per record and commit it?")
    by_id = {p.payment_id: p.row for p in plain_run["stream"].payments}
    wrong = [r for r in tally.rows if by_id.get(r[0]) != r]
    if wrong:
        explain(did=plain_run["did"], saw=f"rows that do not match their payment, e.g. {wrong[:2]}",
                expected=f"e.g. {by_id[wrong[0][0]]}", nudge="copy payment_id, account and amount from the JSON value.")


def test_offsets_are_stored_in_the_database(plain_run):
    """The kafka_offsets table holds, per partition, the offset after the last row written."""
    _require(plain_run)
    stream = plain_run["stream"]
    stored = db_offsets(plain_run["db_path"], stream.topic)
    if stored != stream.ends:
        explain(did=plain_run["did"] + ", then read the kafka_offsets table",
                saw=f"the database's next_offset per partition: {stored or 'no rows'}",
                expected=f"{stream.ends} for topic {stream.topic!r}: each partition's next offset to read, "
                "i.e. the last stored record's offset + 1",
                nudge="after a crash, the database is the only place that knows where the rows stop. What must "
                "it remember per partition, and in which transaction?")


def test_kafka_holds_no_committed_offsets(plain_run):
    """Kafka holds no committed offsets for the sink's group: the database is the only record of progress."""
    _require(plain_run)
    committed = {p: o for p, o in plain_run["committed"].items() if o >= 0}
    if committed:
        explain(did=plain_run["did"] + ", then asked the broker for the group's committed offsets",
                saw=f"committed offsets {committed}",
                expected="none: the sink keeps its progress only in its database",
                nudge="a second record of progress, written at another moment than the rows, can disagree with "
                "them after a crash. Which consumer setting commits offsets to Kafka without being asked?")


def test_sigkill_loses_and_duplicates_nothing(kafka, impl_path, tmp_path):
    """Killed with SIGKILL in the middle of a record, twice, the restarted sink ends with every payment exactly once."""
    stream = produce_payments(kafka, PER_PARTITION, "crash")
    db_path = tmp_path / "sink.db"
    did = (f"produced {len(stream.payments)} payments over {PARTITIONS} partitions, ran {call_text(db_path)} "
           "and SIGKILLed it during its 7th process() call, restarted it and SIGKILLed it after the 11th, "
           "then restarted it once more until the database held every payment")
    first = start_sink(impl_path, tmp_path, kafka, stream, db_path, hold_at=7, name="first")
    try:
        held = wait_for_hold(first, 7, did)
        # Inside process(): the record's row is inserted and its transaction still open, so the sink holds
        # sqlite's write lock and the row is not committed yet.
        lock_free = write_lock_free(db_path)
        committed_early = _committed_before_process(stream, held, db_path)
        first.kill()
    finally:
        first.close()
    if lock_free:
        explain(did=did.split(", restarted")[0].replace("right after", "during") + ", and while process() was "
                "running tried to start a write transaction on the database file",
                saw=f"the database was free to write: no transaction of the sink was open while process() ran for "
                f"{_held_text(held)}",
                expected="process(msg) called after the record's row is inserted and before the transaction "
                "holding that row (and its offset) commits, so the sink holds an open write transaction",
                nudge="process() marks the moment a crash hurts most: the row written, not yet committed. Is "
                "your INSERT (and the offset) in the same transaction as the commit that follows process()?",
                seen_in="the database")
    second = start_sink(impl_path, tmp_path, kafka, stream, db_path, crash_after=11, name="second")
    try:
        wait_for_crash(second, 11, did)
    finally:
        second.close()
    last = start_sink(impl_path, tmp_path, kafka, stream, db_path, name="last")
    try:
        tally = settle(last, db_path, stream, did)
    finally:
        last.close()
    if tally.duplicated or tally.missing:
        explain(did=did, saw=tally.describe(), expected=f"{len(tally.expected)} rows, one per payment",
                nudge="the crash lands after a row was written and before it was committed. After the restart, "
                "does the sink resume exactly where the committed rows stop — and can a row be committed "
                "without the offset that says it was done?")
    stored = db_offsets(db_path, stream.topic)
    if stored != stream.ends:
        explain(did=did + ", then read the kafka_offsets table",
                saw=f"the database's next_offset per partition: {stored or 'no rows'}",
                expected=f"{stream.ends}", nudge="the stored offset must move with every row.")
    if committed_early:
        explain(did=did.split(", restarted")[0].replace("right after", "during") + ", then opened the database file",
                saw=f"the row of {committed_early}, the record process() was called for when the sink died, was "
                "already committed",
                expected="process(msg) called after the record's row is inserted and before the transaction "
                "holding that row (and its offset) commits, so no committed row can lack its offset",
                nudge="if everything is committed before process(), where in your code could a crash still fall "
                "between the row and its offset?", seen_in="the database")


def _held_text(held: dict) -> str:
    return f"the record at partition {held.get('partition')} offset {held.get('offset')}"


def _committed_before_process(stream, held: dict, db_path) -> str:
    """The record the hold hit, if its row was already committed (else "").

    The contract puts process() between the row's INSERT and its transaction's commit, so the kill
    lands where a split (row and offset committed separately) would lose or duplicate. A row already
    committed when process() ran means the crash point was dodged, not survived.
    """
    payment = next((p for p in stream.payments
                    if p.partition == held.get("partition") and p.offset == held.get("offset")), None)
    if payment is None:
        return ""  # process() got no payment record: the other checks say so in their own words
    if any(row[0] == payment.payment_id for row in db_rows(db_path)):
        return f"{payment.payment_id} ({_held_text(held)})"
    return ""


def test_database_offsets_win_over_kafka(kafka, impl_path, tmp_path):
    """Given a database restored from a backup, the sink resumes from the database's offsets, not Kafka's."""
    stream = produce_payments(kafka, PER_PARTITION, "restore")
    db_path = tmp_path / "sink.db"
    done = 4
    restored = (0, 1)
    archived_topic = restore_database(db_path, stream, done, restored)
    # Kafka's committed offsets disagree with the database: ahead on partition 0 (trusting them
    # skips payments), behind on partition 1 (trusting them repeats payments), and set on partition 2,
    # which the database has never seen (it starts at the beginning, whatever Kafka says).
    kafka_says = {0: 8, 1: 0, 2: 6}
    futures = kafka.admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        stream.group, [TopicPartition(stream.topic, p, o) for p, o in kafka_says.items()])])
    futures[stream.group].result(timeout=15)
    # Since the backup, retention deleted partition 0's oldest records, including two the database does
    # not hold: its stored offset no longer exists, so the sink resumes at the oldest record still there.
    for future in kafka.admin.delete_records([TopicPartition(stream.topic, 0, RETAINED_FROM)]).values():
        future.result(timeout=15)
    gone = [p for p in stream.payments if p.partition == 0 and done <= p.offset < RETAINED_FROM]
    kept = Stream(stream.topic, stream.group, [p for p in stream.payments if p not in gone])
    did = (f"produced {len(stream.payments)} payments over {PARTITIONS} partitions; prepared a database holding "
           f"the rows of the first {done} payments of partitions {list(restored)} and next_offset={done} for each "
           f"(a restore from a backup; nothing for partition 2), plus a row and offsets of an earlier topic; "
           f"committed offsets {kafka_says} for the group in Kafka; deleted partition 0's records below offset "
           f"{RETAINED_FROM} (retention: payments {', '.join(p.payment_id for p in gone)} are gone for good); then "
           f"ran {call_text(db_path)} until the database held every payment still in the topic")
    run = start_sink(impl_path, tmp_path, kafka, stream, db_path, name="restored")
    try:
        tally = settle(run, db_path, kept, did)
    finally:
        run.close()
    if tally.duplicated or tally.missing:
        lost = sorted({int(i.split("-")[1]) for i in tally.missing})
        repeated = sorted({int(i.split("-")[1]) for i in tally.duplicated})
        explain(did=did, saw=f"{tally.describe()}; partitions with missing payments {lost}, with repeated "
                f"payments {repeated}",
                expected=f"{len(tally.expected)} rows, one per payment still in the topic: the sink resumes at "
                f"offset {done} on partition 1, at the oldest record left ({RETAINED_FROM}) on partition 0, and at "
                "the beginning of partition 2",
                nudge="when the group hands the sink its partitions, which record of progress matches the rows "
                "in the database: Kafka's committed offsets, or the database's own? Where does a partition "
                "start that the database has no offset for, and one whose stored offset no longer exists?")
    archived_rows = [r for r in tally.rows if r == ARCHIVED_ROW]
    kept_offsets = db_offsets(db_path, archived_topic)
    if len(archived_rows) != 1 or kept_offsets != ARCHIVED_OFFSETS:
        explain(did=did, saw=f"the earlier topic's row {ARCHIVED_ROW} appears {len(archived_rows)} times, its "
                f"offsets are now {kept_offsets or 'gone'}", expected=f"both untouched: the row once, offsets "
                f"{ARCHIVED_OFFSETS} for {archived_topic!r}", nudge="the tables may hold an earlier run's "
                "data: create them only if missing, never drop or empty them, and read and write only the "
                "offsets of your own topic.", seen_in="the database")
    stored = db_offsets(db_path, stream.topic)
    if stored != stream.ends:
        explain(did=did + ", then read the kafka_offsets table", saw=f"next_offset for {stream.topic!r}: {stored}",
                expected=f"{stream.ends}", nudge="the stored offset must move with every row, per partition.",
                seen_in="the database")
