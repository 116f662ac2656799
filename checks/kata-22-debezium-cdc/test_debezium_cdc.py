"""Hidden checks for kata-22 (Debezium CDC: PostgreSQL -> Kafka Connect -> a SQLite replica). Not for learners."""

import contextlib
import json
import sqlite3
import time

import pytest
from _kata22_diagnose import compare, events_by_key
from _kata22_pg import INITIAL_RECORDS, PRIMARY_KEYS, TABLES, make_changes, record_counts, table_rows
from _kata22_support import (
    Pipeline,
    died,
    event_of,
    expect_committed_to_the_end,
    expect_empty_group,
    expect_member,
    read_replica,
    start_consumer,
    stop,
    wait_caught_up,
)
from confluent_kafka.admin import ConfigResource

from grader.kit import explain, wait_for
from grader.kit.connect import ConnectError, ConnectRest

SETUP = ("created tables customers, products and order_lines with 14 rows (products shares ids with customers; "
         "products and order_lines have REPLICA IDENTITY FULL; order_lines has a composite key) and audit, which is "
         "not to be replicated")


@pytest.fixture
def pipe(kafka, postgres, postgres_url, connect_url):
    pipeline = Pipeline(kafka, postgres, postgres_url, ConnectRest(connect_url))
    yield pipeline
    pipeline.close()


def test_connector_streams_the_tables(impl, pipe, kafka, postgres):
    """The connector snapshots exactly the listed tables into compacted topics as plain JSON change events,
    under the README's slot and publication names, and follows a delete with a tombstone."""
    pipe.register(impl, SETUP)
    did = f"{SETUP}, registered your connector and read its change topics ({', '.join(pipe.topics)})"
    pipe.wait_for_records(dict(INITIAL_RECORDS), did)
    slots = postgres.execute("SELECT slot_name, plugin FROM pg_replication_slots WHERE slot_name LIKE %s",
                             (pipe.prefix + "%",)).fetchall()
    if (f"{pipe.prefix}_slot", "pgoutput") not in slots:
        explain(did=did + ", then listed the replication slots", seen_in="PostgreSQL", saw=f"{slots}",
                expected=f"a slot {pipe.prefix}_slot of the plugin pgoutput (built into PostgreSQL)")
    pubs = postgres.execute("SELECT pubname, puballtables FROM pg_publication WHERE pubname LIKE %s",
                            (pipe.prefix + "%",)).fetchall()
    tables = sorted(r[0] for r in postgres.execute("SELECT tablename FROM pg_publication_tables WHERE pubname = %s",
                                                   (f"{pipe.prefix}_pub",)).fetchall())
    if pubs != [(f"{pipe.prefix}_pub", False)] or tables != sorted(TABLES):
        explain(did=did + ", then listed the publications", seen_in="PostgreSQL",
                saw=f"publications {pubs}, tables in {pipe.prefix}_pub: {tables}",
                expected=f"one publication {pipe.prefix}_pub holding exactly {sorted(TABLES)}",
                nudge=("a publication FOR ALL TABLES decodes every table of the database, also those nobody asked "
                       "for. Which publication.autocreate.mode makes one for the listed tables only?"
                       if any(all_tables for _, all_tables in pubs) else
                       "the publication holds tables that are not in the tables list: which setting names the "
                       "tables to capture?" if set(tables) - set(TABLES) else
                       "the README names the publication after the topic prefix."))
    present = [t for t in kafka.admin.list_topics(timeout=10).topics if t.startswith(pipe.prefix + ".")]
    if sorted(present) != sorted(pipe.topics):
        explain(did=did + ", then listed the topics", saw=f"{sorted(present)}", expected=f"{sorted(pipe.topics)}",
                nudge="audit is not in the tables list: which setting names the tables to capture?")
    want = table_rows(postgres, pipe.schema)
    records = pipe.records()
    for table, recs in records.items():
        for r in recs:
            check_snapshot_record(pipe, table, r, want, did)
    configs = kafka.admin.describe_configs([ConfigResource("topic", t) for t in pipe.topics])
    policies = {res.name: future.result(timeout=10)["cleanup.policy"].value for res, future in configs.items()}
    if any(p != "compact" for p in policies.values()):
        explain(did=did + ", then described the topics", saw=f"cleanup.policy {policies}",
                expected="compact on every change topic: the latest record per key is the row, and retention "
                "must never delete a row that did not change for a week",
                nudge="the connector creates these topics: with which topic settings?")
    postgres.execute(f"DELETE FROM {pipe.schema}.customers WHERE id = 1")
    did += ", then deleted customers 1"
    pipe.wait_for_records({**INITIAL_RECORDS, "customers": INITIAL_RECORDS["customers"] + 2}, did, stall=6,
                          nudge="a delete is one record here, the delete event. What lets compaction drop the "
                          "deleted key later?")
    tail = pipe.records()["customers"][-2:]
    ops = [None if event_of(r) is None else event_of(r)["op"] for r in tail]
    if ops != ["d", None] or {json.loads(r.key)["id"] for r in tail} != {1}:
        explain(did=did, saw=f"the last two records of its topic: ops {ops}, keys {[r.key_text for r in tail]}",
                expected="the delete event (op \"d\") and then a tombstone (same key, no value), so compaction can "
                "drop the key")


def check_snapshot_record(pipe, table: str, record, want: dict, did: str) -> None:
    try:
        value = event_of(record)
        key = json.loads(record.key)
    except (TypeError, ValueError):
        explain(did=did, saw=f"a record of {table}: key {record.key_text!r:.80}, value {record.value_text!r:.120}",
                expected="JSON key and value", nudge="which converters turn the connector's records into bytes?")
    if value is None or "schema" in value or "schema" in key:
        explain(did=did, saw=f"a record of {table}: key {record.key_text:.120}, value {record.value_text or '':.160}",
                expected='plain JSON: the key {"id": 1}, the value {"before": ..., "after": ..., "op": "r", '
                '"source": {...}}',
                nudge="the JSON converter wraps every key and value in its schema unless told not to.")
    if value.get("op") != "r":
        explain(did=did, saw=f"a record of {table} with op {value.get('op')!r} before any change was made",
                expected='op "r" (a row read by the snapshot)')
    pk = {k: value["after"].get(k) for k in PRIMARY_KEYS[table]}
    expected = want.get((f"{pipe.schema}.{table}", json.dumps(pk, sort_keys=True)))
    if key != pk or value["after"] != expected:
        explain(did=did, saw=f"key {key}, after {value['after']}", expected=f"key {pk}, after {expected}",
                nudge=("NUMERIC columns are written as the connector's decimal.handling.mode says; the default is "
                       "the unscaled value's bytes (base64)." if expected and value["after"].get(
                           "balance", value["after"].get("price")) != expected.get("balance", expected.get("price"))
                       else "compare column by column."))


def run_and_compare(impl_path, tmp_path, pipe, kafka, postgres, did, rounds_before, rounds_during, name="replica",
                    during=None, nudge=None):
    """Start the consumer, make changes, wait until it committed every record, stop it, compare the replica."""
    group, replica = kafka.unique("replica"), tmp_path / "replica.db"
    make_changes(postgres, pipe.schema, rounds_before)
    # Every change topic exists before the consumer subscribes (the snapshot creates them).
    pipe.wait_for_records(record_counts(rounds_before), did)
    run = start_consumer(impl_path, tmp_path, pipe, group, replica, name=name)
    try:
        (during or (lambda _run: make_changes(postgres, pipe.schema, rounds_during)))(run)
        want_records = record_counts(rounds_before + rounds_during)
        pipe.wait_for_records(want_records, did, nudge=nudge)
        wait_caught_up(pipe, run, group, want_records, did)
        expect_member(pipe, run, group, did)
        stop(run, did)
    finally:
        run.close()
    did += ", then stopped your consumer"
    expect_empty_group(pipe, group, did)
    records = pipe.records()
    compare(read_replica(replica, did), table_rows(postgres, pipe.schema), events_by_key(pipe, records), did)
    expect_committed_to_the_end(pipe, group, records, did)
    return run, records, group


def group_of(run) -> str:
    return run.spec["kwargs"]["group_id"]


def expect_each_change_once(runs, records: dict, did: str, held=None) -> None:
    """process() once per change event (not for tombstones), in topic order per partition, over all the runs."""
    want = sorted((r.topic, r.partition, r.offset) for recs in records.values() for r in recs if r.value is not None)
    tombstones = {(r.topic, r.partition, r.offset) for recs in records.values() for r in recs if r.value is None}
    seen = [(x["topic"], x["partition"], x["offset"]) for run in runs for x in run.records()]
    if held:
        seen.append(held)
    if [s for s in seen if s in tombstones]:
        explain(did=did, seen_in="the calls of process()",
                saw=f"process() was called for {len(set(seen) & tombstones)} tombstones",
                expected="process() for change events only: a tombstone changes nothing in the replica")
    if sorted(seen) != want:
        twice = sorted({s for s in seen if seen.count(s) > 1})
        missing = sorted(set(want) - set(seen))
        explain(did=did, seen_in="the calls of process()",
                saw=f"{len(seen)} calls for {len(want)} change events"
                + (f"; twice for (topic, partition, offset) {twice[:2]}" if twice else "")
                + (f"; never for {missing[:2]}" if missing else ""),
                expected="process() exactly once per change event applied (r, c, u, d), also across a crash: a "
                "redelivered event the replica already has is skipped without process()")
    for run in runs:
        per_partition: dict = {}
        for x in run.records():
            last = per_partition.get((x["topic"], x["partition"]), -1)
            if x["offset"] <= last:
                explain(did=did, seen_in="the calls of process()", saw=f"{x['topic']} offset {x['offset']} after "
                        f"offset {last}", expected="the changes of each partition applied in offset (commit) order")
            per_partition[(x["topic"], x["partition"])] = x["offset"]


def test_replica_follows_the_tables(impl, impl_path, tmp_path, pipe, kafka, postgres):
    """Snapshot rows, inserts, updates, deletes, a primary-key change and a multi-statement transaction all reach
    the replica: it ends equal to the tables, every change applied once, in order, tombstones handled."""
    pipe.register(impl, SETUP)
    did = (f"{SETUP}, registered your connector, ran apply_changes on its topics, and inserted, updated and deleted "
           "rows in all three tables meanwhile (a changed primary key and a transaction of three statements too)")
    did += ", most of them while a reader of the replica held a read transaction for 1 s"

    def with_a_reader(run):
        wait_caught_up(pipe, run, group_of(run), dict(INITIAL_RECORDS), did)
        make_changes(postgres, pipe.schema, "a")
        # The replica is read while it is written: a write that finds it locked must wait, not fail.
        with contextlib.closing(sqlite3.connect(run.spec["kwargs"]["replica_path"], timeout=30,
                                                isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM replica").fetchone()
            make_changes(postgres, pipe.schema, "bc")
            time.sleep(1.0)  # the hold itself (not a wait for a condition): a reader that takes its time
            reader.execute("COMMIT")
        run.reset_stop_gap()  # that hold blocked the consumer's write on purpose: time should_stop() from here

    run, records, _ = run_and_compare(impl_path, tmp_path, pipe, kafka, postgres, did, "", "abc",
                                      during=with_a_reader)
    expect_each_change_once([run], records, did)


def test_connector_stopped_and_resumed_loses_nothing(impl, impl_path, tmp_path, pipe, kafka, postgres):
    """Changes made while the connector is stopped arrive after it resumes, and nothing is read twice."""
    pipe.register(impl, SETUP)
    did = (f"{SETUP}, registered your connector, ran apply_changes, changed rows, stopped the connector (REST: PUT "
           "/connectors/NAME/stop), changed rows while it was stopped, resumed it (PUT .../resume) and changed "
           "rows again")

    def with_a_stop(_run):
        make_changes(postgres, pipe.schema, "a")
        pipe.wait_for_records(record_counts("a"), did.split(", stopped")[0])
        pipe.rest.stop(pipe.name)
        make_changes(postgres, pipe.schema, "b")
        pipe.rest.resume(pipe.name)
        try:
            pipe.rest.wait_running(pipe.name)
        except ConnectError as exc:
            explain(did=did.split(" and changed rows again")[0], saw=exc.message,
                    seen_in="the Connect worker's REST API", expected="the resumed connector RUNNING again",
                    nudge="the connector resumes from the position it stored. Who keeps the WAL from that "
                    "position while it is stopped, and what removed it?")
        make_changes(postgres, pipe.schema, "c")

    def reads_twice(got) -> str:
        reads = [event_of(r)["op"] for recs in pipe.records().values() for r in recs if r.value is not None]
        if reads.count("r") > sum(INITIAL_RECORDS.values()):
            return (f"{reads.count('r')} snapshot reads (op \"r\") for the {sum(INITIAL_RECORDS.values())} rows that "
                    "existed before the connector: it read the tables again when it resumed. A resumed connector "
                    "continues from the offset it stored; which snapshot.mode reads the tables on every start?")
        return ("changes made while the connector was stopped are missing: where does a connector resume from, "
                "and what keeps the server's WAL for it until then?")

    run, records, _ = run_and_compare(impl_path, tmp_path, pipe, kafka, postgres, did, "", "abc",
                                      during=with_a_stop, nudge=reads_twice)
    expect_each_change_once([run], records, did)


def test_consumer_killed_inside_processing_applies_once(impl_path, impl, tmp_path, pipe, kafka, postgres):
    """SIGKILLed while process() runs for a change (in the replica, not yet committed to Kafka), the restarted
    consumer neither loses nor re-applies anything; nothing is committed past an unfinished change."""
    pipe.register(impl, SETUP)
    make_changes(postgres, pipe.schema, "abc")
    want_records = record_counts("abc")
    did = f"{SETUP}, registered your connector, made every change"
    pipe.wait_for_records(want_records, did)
    group, replica, hold_at = kafka.unique("replica"), tmp_path / "replica.db", 18
    did += f", ran apply_changes and held it inside process() for change #{hold_at}"
    first = start_consumer(impl_path, tmp_path, pipe, group, replica, name="held", hold_at=hold_at)
    try:
        wait_for(lambda: first.hold_file.exists() or first.proc.poll() is not None, 60,
                 f"process() to be called for change #{hold_at}")
        if not first.hold_file.exists():
            died(first, did)
        held_at = json.loads(first.hold_file.read_text())
        time.sleep(0.5)  # auto-commit (100 ms here) or an early commit would show by now
        # The held change is in the replica, its process() has not returned: its offset must not be committed.
        done = pipe.kafka.committed(group, held_at["topic"]).get(held_at["partition"], -1)
        if done > held_at["offset"]:
            explain(did=did + ", and looked at the group's committed offsets meanwhile",
                    saw=f"committed offset {done} on {held_at['topic']} while process() was still running for its "
                    f"offset {held_at['offset']}",
                    expected=f"at most {held_at['offset']}: no offset committed past a change whose process() has "
                    "not returned", nudge="a committed offset says 'the replica has this change'. Who committed it "
                    "this early: your own commit() before applying, or the consumer's automatic commits "
                    "(enable.auto.commit)? Commit yourself, after applying and process().")
    finally:
        first.close()
    held = (held_at["topic"], held_at["partition"], held_at["offset"])
    did = did.replace("held it", "SIGKILLed it while it was held") + ", then started it again"
    second, records = _restart_and_compare(impl_path, tmp_path, pipe, postgres, group, replica, want_records, did,
                                           "restarted")
    expect_each_change_once([first, second], records, did, held=held)


def test_crash_right_after_a_sqlite_commit_applies_once(impl_path, impl, tmp_path, pipe, kafka, postgres):
    """Killed the moment its code goes on after a SQLite transaction committed, the restarted consumer ends with
    the right replica and applies no change twice (a change and its stored offset commit together)."""
    pipe.register(impl, SETUP)
    want_records = record_counts("")
    did = f"{SETUP}, registered your connector"
    pipe.wait_for_records(want_records, did)
    group, replica, after = kafka.unique("replica"), tmp_path / "replica.db", 9
    did += (f", ran apply_changes and SIGKILLed it the moment your code went on after its {after}th SQLite "
            "transaction that changed rows")
    first = start_consumer(impl_path, tmp_path, pipe, group, replica, name="db-crash", crash_after_db_commit=after)
    try:
        code = first.wait(timeout=60)
        if code is None or first.db_crash() is None:
            if code is not None and not first.crashed_as_planned:
                died(first, did)
            explain(did=did.replace("SIGKILLed it", "waited 60 s to SIGKILL it"), seen_in="the replica",
                    saw=f"it had not committed {after} SQLite transactions that changed rows",
                    expected=f"one committed transaction per change, {after} of them within seconds",
                    nudge="is each change committed (with db: or COMMIT) before you go on to the next one?")
    finally:
        first.close()
    # Only snapshot rows, each the one change of its key: a change lost to the crash cannot be hidden by a later one.
    did += ", then started it again"
    second, records = _restart_and_compare(impl_path, tmp_path, pipe, postgres, group, replica, want_records, did,
                                           "after-db-crash")
    seen = [(x["topic"], x["offset"]) for run in (first, second) for x in run.records()]
    twice = sorted({s for s in seen if seen.count(s) > 1})
    if twice:
        explain(did=did, seen_in="the calls of process()", saw=f"process() ran twice for (topic, offset) {twice[:2]}",
                expected="each change applied once: whatever a crash interrupts, a change and the record that it "
                "was applied are committed together or not at all",
                nudge="are the replica's row and the stored offset written in one transaction?")


def _restart_and_compare(impl_path, tmp_path, pipe, postgres, group, replica, want_records, did, name):
    """Start the consumer again until it caught up and stopped; the replica must equal the tables and every offset be
    committed. Returns the run and the change records."""
    second = start_consumer(impl_path, tmp_path, pipe, group, replica, name=name)
    try:
        wait_caught_up(pipe, second, group, want_records, did)
        stop(second, did)
    finally:
        second.close()
    records = pipe.records()
    compare(read_replica(replica, did), table_rows(postgres, pipe.schema), events_by_key(pipe, records), did)
    expect_committed_to_the_end(pipe, group, records, did)
    return second, records
