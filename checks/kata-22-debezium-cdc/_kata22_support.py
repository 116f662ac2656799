"""The pipeline of kata-22's checks: the learner's connector registered on the run's Connect worker, the change
topics read back, the learner's consumer run in its own process, its replica read (not shown to learners)."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from _kata22_pg import TABLES, create

from grader.kit import ChildRun, explain
from grader.kit.connect import ConnectError, ConnectRest

DEBEZIUM = "io.debezium.connector.postgresql.PostgresConnector"
STOP_WITHIN_S = 3.5  # should_stop() at least once a second, then close: the solution needs about 1 s
STOP_GAP_S = 2.0  # the longest gap between two should_stop() calls: once a second, with slack for a busy machine


def consumer_config() -> dict:
    """Short sessions: after a SIGKILL the dead member leaves the group within 2 s."""
    return {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500, "auto.commit.interval.ms": 100,
            "client.id": f"kata22-replica-{uuid.uuid4().hex[:8]}"}


@dataclass
class Pipeline:
    """One check's source tables (a schema of their own), connector, slot, publication and topics."""

    kafka: object
    pg: object
    postgres_url: str
    rest: ConnectRest
    schema: str = ""
    prefix: str = ""
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        # Slot and publication names allow lowercase letters, digits and _ only.
        tag = re.sub(r"[^a-z0-9]", "_", self.kafka.prefix.lower())[:30]
        self.prefix = f"{tag}_{uuid.uuid4().hex[:6]}"
        self.schema = f"src_{uuid.uuid4().hex[:8]}"
        self.name = f"{self.prefix}-connector"
        create(self.pg, self.schema)

    @property
    def tables(self) -> list[str]:
        return [f"{self.schema}.{t}" for t in TABLES]

    @property
    def topics(self) -> list[str]:
        return [f"{self.prefix}.{t}" for t in self.tables]

    def topic(self, table: str) -> str:
        return f"{self.prefix}.{self.schema}.{table}"

    @property
    def pg_settings(self) -> dict:
        url = urlparse(self.postgres_url)
        return {"host": url.hostname, "port": url.port or 5432, "user": url.username or "postgres",
                "password": url.password or "", "dbname": (url.path or "/postgres")[1:]}

    def call_args(self) -> str:
        return f"connector_config({self.pg_settings}, {self.tables}, {self.prefix!r})"

    def register(self, impl, did: str) -> None:
        """Ask the learner for the connector's configuration, register it and wait until it runs."""
        try:
            config = impl.connector_config(self.pg_settings, self.tables, self.prefix)
        except NotImplementedError as exc:
            explain(did=f"called {self.call_args()}", saw=f"NotImplementedError: {exc}",
                    expected="the Debezium connector's configuration (a dict)", seen_in="your function")
        if not isinstance(config, dict) or not config:
            explain(did=f"called {self.call_args()}", saw=f"it returned {config!r:.120}",
                    expected="a dict of connector settings, e.g. {'connector.class': ..., 'topic.prefix': ...}",
                    seen_in="your function's return value")
        self.config = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.items()}
        did = f"{did}, registered the configuration of {self.call_args()} as connector {self.name}"
        if self.config.get("connector.class") != DEBEZIUM:
            explain(did=did, saw=f"connector.class = {self.config.get('connector.class')!r}",
                    expected=f"Debezium's PostgreSQL connector, {DEBEZIUM}", seen_in="your configuration")
        try:
            errors = self.rest.validate(DEBEZIUM, self.config)
            if errors:
                explain(did=did + " (Connect validates a configuration first)", saw="; ".join(errors[:4]),
                        seen_in="Connect's validation", expected="a configuration Connect accepts",
                        nudge="each message names the setting it is about.")
            self.rest.put_config(self.name, self.config)
            self.rest.wait_running(self.name, timeout=60)
        except ConnectError as exc:
            explain(did=did, saw=exc.message, seen_in="the Connect worker's REST API",
                    expected="the connector and its task RUNNING",
                    nudge="the message is the task's own: which setting does it point at?")

    def close(self) -> None:
        """Remove what the check made: a slot left behind keeps the server's WAL forever."""
        with contextlib.suppress(Exception):
            self.rest.delete(self.name)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the slot stays active until the task has shut down
            try:
                self.pg.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                                "WHERE slot_name LIKE %s", (self.prefix + "%",))
                break
            except Exception:  # noqa: BLE001 - "slot is active": try again shortly
                time.sleep(0.3)
        with contextlib.suppress(Exception):
            for (pub,) in self.pg.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE %s",
                                          (self.prefix + "%",)).fetchall():
                self.pg.execute(f'DROP PUBLICATION "{pub}"')
            self.pg.execute(f"DROP SCHEMA {self.schema} CASCADE")
        topics = [t for t in self.kafka.admin.list_topics(timeout=10).topics if t.startswith(self.prefix + ".")]
        self.kafka.created_topics.extend(topics)  # the kit deletes them

    # ---- the change topics --------------------------------------------------------------
    def high_watermarks(self) -> dict[str, int]:
        present = self.kafka.admin.list_topics(timeout=10).topics
        consumer = self.kafka.consumer()
        return {t: sum(self.kafka.high_watermark(consumer, self.topic(t), p)
                       for p in range(len(present[self.topic(t)].partitions)))
                if self.topic(t) in present else 0 for t in TABLES}

    def wait_for_records(self, want: dict[str, int], did: str, stall: float = 8.0, timeout: float = 60.0,
                         nudge=None) -> None:
        """Wait until every change topic holds the records the changes made (or stops growing)."""
        deadline, last, last_at = time.monotonic() + timeout, None, time.monotonic()
        while True:
            got = self.high_watermarks()
            if got == want:
                return
            if any(got[t] > want[t] for t in TABLES):
                break
            if got != last:
                last, last_at = got, time.monotonic()
            if time.monotonic() - last_at > stall or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        if callable(nudge):
            nudge = nudge(got)  # decided on what the topics show now
        if not nudge and all(got[t] <= want[t] for t in TABLES):
            nudge = self._fewer_records_nudge()
        explain(did=did, saw=f"records per change topic: {self._per_table(got)}",
                expected=f"{self._per_table(want)}: one record per snapshot row, insert and update; two for a delete "
                "(the delete event and its tombstone); three for a changed primary key (delete, tombstone, create)",
                nudge=nudge or "more records than changes: something was read twice.")

    def _fewer_records_nudge(self) -> str:
        present = [t for t in self.kafka.admin.list_topics(timeout=10).topics if t.startswith(self.prefix + ".")]
        if not present and not any(k.startswith("topic.creation.default.") for k in self.config):
            return ("no change topic exists. This broker creates no topics on its own (auto.create.topics.enable is "
                    "false): who creates a source connector's topics, with which settings?")
        if not present:
            return ("rows that existed before the connector was registered never reached Kafka: how does the "
                    "connector read them (snapshot.mode)?")
        records = self.records()
        if not any(r.value and b'"op":"r"' in r.value for recs in records.values() for r in recs):
            return ("no row that existed before the connector was registered reached Kafka (no op \"r\"): how does "
                    "the connector read them (snapshot.mode)?")
        for recs in records.values():
            for n, r in enumerate(recs):
                op = None
                with contextlib.suppress(ValueError, AttributeError):
                    op = json.loads(r.value).get("op") if r.value is not None else None
                if r.value is not None and op == "d" and (
                        n + 1 == len(recs) or recs[n + 1].value is not None):
                    return "no tombstone follows the delete events: what lets compaction drop a deleted key?"
        return "the connector sent fewer records than there were changes: its task status and log say why."

    def _per_table(self, counts: dict[str, int]) -> str:
        return ", ".join(f"{t}: {counts[t]}" for t in TABLES)

    def records(self) -> dict[str, list]:
        """Every record of every change topic, read from the beginning: {table: [Record]}."""
        return {t: self.kafka.read_all(self.topic(t), isolation="read_uncommitted") for t in TABLES}


def event_of(record) -> dict | None:
    """A change record's value as a dict, None for a tombstone."""
    return None if record.value is None else json.loads(record.value)


# ---- the learner's consumer ---------------------------------------------------------------
def start_consumer(impl_path, tmp_path: Path, pipe: Pipeline, group: str, replica: Path, name: str = "replica",
                   **crash) -> ChildRun:
    return ChildRun(impl_path, "apply_changes",
                    {"bootstrap_servers": pipe.kafka.bootstrap_servers, "topics": pipe.topics, "group_id": group,
                     "replica_path": str(replica), "consumer_config": consumer_config()},
                    workdir=tmp_path, name=name, **crash)


def died(run: ChildRun, did: str) -> None:
    err = run.error()
    saw = (f"apply_changes raised {err['type']}: {err['message']}" if err
           else f"apply_changes ended (exit code {run.proc.returncode}) before it was asked to stop")
    nudge = ""
    if err and "NoneType" in err["message"]:
        nudge = ("a delete is followed by a tombstone: a record with the row's key and no value at all "
                 "(msg.value() is None). It changes nothing in the replica; it lets compaction drop the key.")
    explain(did=did, saw=saw + (f"\n{err['traceback'][-800:]}" if err and err["type"] != "NotImplementedError"
                                else ""),
            expected="it to keep consuming until should_stop() returns True", seen_in="your function", nudge=nudge)


def committed_ends(pipe: Pipeline, group: str) -> dict[str, int]:
    """The group's committed offsets per topic (partition 0 and up, summed; -1 counts as 0)."""
    total = {}
    for t in TABLES:
        offsets = pipe.kafka.committed(group, pipe.topic(t))
        total[t] = sum(max(o, 0) for o in offsets.values())
    return total


def wait_caught_up(pipe: Pipeline, run: ChildRun, group: str, want: dict[str, int], did: str,
                   stall: float = 8.0) -> None:
    """Wait until the group committed every record, or nothing moves for `stall` s (the replica then tells why)."""
    last, last_at = None, time.monotonic()
    while True:
        if run.proc.poll() is not None:
            died(run, did)
        got = committed_ends(pipe, group)
        if all(got[t] >= want[t] for t in TABLES):
            return
        seen = (tuple(got.values()), len(run.records()))
        if seen != last:
            last, last_at = seen, time.monotonic()
        if time.monotonic() - last_at > stall:
            return  # the replica, compared next, shows what is missing; the commits are checked after it
        time.sleep(0.3)


def stop(run: ChildRun, did: str) -> None:
    run.stop()
    asked = time.monotonic()
    code = run.wait(timeout=STOP_WITHIN_S)
    if code is None:
        run.kill()
        explain(did=did + ", then asked it to stop (should_stop() returned True)",
                saw=f"it was still running {STOP_WITHIN_S:.1f}s later", seen_in="your function",
                expected=f"apply_changes to return within {STOP_WITHIN_S:.1f}s (should_stop() checked at least "
                "once a second, then the consumer closed)",
                nudge="check should_stop() at least once a second, also when no record arrives.")
    if code != 0:
        died(run, did)
    took = time.monotonic() - asked
    if took > STOP_WITHIN_S:
        explain(did=did + ", then asked it to stop (should_stop() returned True)", saw=f"it took {took:.1f}s to return",
                expected=f"apply_changes to return within {STOP_WITHIN_S:.1f}s", seen_in="your function",
                nudge="check should_stop() at least once a second, also when no record arrives.")
    gap = run.max_stop_gap()
    if gap > STOP_GAP_S:
        explain(did=did + ", timing the calls of should_stop() while it ran", seen_in="your function",
                saw=f"your code went {gap:.1f}s without calling should_stop()",
                expected=f"should_stop() checked at least once a second, also while no record arrives (at most "
                f"{STOP_GAP_S:.1f}s apart, with room for a busy machine)",
                nudge="how long can your poll() wait when the topics are idle?")


def expect_member(pipe: Pipeline, run: ChildRun, group: str, did: str) -> None:
    """The consumer uses consumer_config: its client.id shows in the group (a rebalance may hide it a moment)."""
    want = run.spec["kwargs"]["consumer_config"]["client.id"]
    members: list = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        description = pipe.kafka.admin.describe_consumer_groups([group])[group].result(timeout=10)
        members = sorted(m.client_id for m in description.members)
        if members == [want]:
            return
        time.sleep(0.2)
    explain(did=did + ", then described the group", saw=f"members with client ids {members}",
            expected=f"one member, client id {want!r} (from consumer_config)",
            nudge="add every entry of consumer_config to your consumer's configuration (the checks shorten its "
            "session timeout, so a killed consumer's partitions move on within seconds).")


def read_replica(path: Path, did: str) -> dict[tuple[str, str], tuple[dict, int]]:
    """{(source, canonical key): (row, lsn)} of the learner's replica."""
    if not path.exists():
        explain(did=did, saw=f"no database at {path.name}", expected="apply_changes to create it",
                seen_in="the replica")
    db = sqlite3.connect(str(path), timeout=30)
    try:
        rows = db.execute("SELECT source, key, row, lsn FROM replica").fetchall()
    except sqlite3.Error as exc:
        explain(did=did, saw=f"reading the table replica failed: {exc}", seen_in="the replica",
                expected="the table replica (source, key, row, lsn) of the README")
    finally:
        db.close()
    out = {}
    for source, key, row, lsn in rows:
        try:
            out[(source, json.dumps(json.loads(key), sort_keys=True))] = (json.loads(row), lsn)
        except (TypeError, ValueError):
            explain(did=did, saw=f"the row ({source!r}, {key!r}) holds {row!r:.100}", seen_in="the replica",
                    expected="key and row as JSON objects, e.g. key {\"id\": 7} and row {\"id\": 7, \"name\": ...}")
    return out


def expect_committed_to_the_end(pipe: Pipeline, group: str, records: dict[str, list], did: str) -> None:
    """The group committed every record of every change topic, tombstones too."""
    got = committed_ends(pipe, group)
    ends = {t: len(records[t]) for t in TABLES}
    if got != ends:
        short = [t for t in TABLES if got[t] < ends[t]]
        next_up = [records[t][got[t]] for t in short if got[t] < len(records[t])]
        explain(did=did + ", then read the group's committed offsets", saw=f"{got}; the topics end at {ends}",
                expected="every record's offset committed, tombstones too, so a restarted consumer starts at the end",
                nudge=("the first record not committed is a tombstone (no value). Is it skipped before the commit? "
                       "`if not msg` is True for it: a Message's len() is the length of its value."
                       if next_up and next_up[0].value is None else
                       "a committed offset names the next record to read, not the last one read."))


def expect_empty_group(pipe: Pipeline, group: str, did: str) -> None:
    """After apply_changes returned, its consumer has left the group (closed, not just dropped)."""
    description = pipe.kafka.admin.describe_consumer_groups([group])[group].result(timeout=10)
    members = sorted(m.client_id for m in description.members)
    if members:
        explain(did=did + ", then described the group", saw=f"state {description.state.name}, members {members}",
                expected="an empty group: apply_changes closes its consumer before returning, which leaves the group "
                "at once", nudge="consumer.close() leaves the group; without it the broker waits for the member's "
                "session to time out before others get its partitions.")
