"""Hidden checks for kata-10 (retention and compaction). Never shown to learners."""

import json
import time
from collections import Counter

from confluent_kafka.admin import ConfigResource

from grader.kit import explain

DAY_MS = 24 * 3600 * 1000
SEVEN_YEARS_MS = 7 * 365 * DAY_MS
METRICS_MAX_BYTES = 64 * 1024 * 1024
SCENARIOS = ("audit", "metrics", "profiles", "carts")
ROLL_KEY = "~segment-roll"  # the checks' own tombstones that close the active segment

# A compacted topic the broker cleans within a check's patience: segments roll 100 ms after
# they open (on the next append), any dirty data is worth cleaning, tombstones may go quickly.
FAST_COMPACTION = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
                   "delete.retention.ms": "100", "min.compaction.lag.ms": "0"}


# ---------------------------------------------------------------------- Part A helpers


def create_scenarios(kafka, impl) -> dict[str, dict]:
    """Call the learner's create_retention_topics and return each scenario's topic configs, as the broker says."""
    names = {s: kafka.unique(s) for s in SCENARIOS}
    kafka.created_topics.extend(names.values())  # the kit deletes them afterwards
    did = f"called create_retention_topics(bootstrap, {{scenario: topic}}, metrics_max_bytes={METRICS_MAX_BYTES})"
    try:
        impl.create_retention_topics(kafka.bootstrap_servers, dict(names), METRICS_MAX_BYTES)
    except Exception as exc:  # the learner's code failed: say so in their terms
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="all four topics created",
                nudge="read the exception: which setting did the broker refuse, and why?")
    configs = {}
    for scenario, topic in names.items():
        md = kafka.admin.list_topics(topic, timeout=10).topics.get(topic)
        if not md or md.error:
            explain(did=did + ", then looked the topics up", saw=f"no topic {topic!r} for scenario {scenario!r}",
                    expected="one topic per scenario, with the name given for it")
        resource = ConfigResource("topic", topic)
        entries = kafka.admin.describe_configs([resource])[resource].result(timeout=30)
        configs[scenario] = {name: entry.value for name, entry in entries.items()}
    return configs


def policy(config: dict) -> set[str]:
    return {p.strip() for p in (config.get("cleanup.policy") or "").split(",") if p.strip()}


def show(config: dict, *names: str) -> str:
    return ", ".join(f"{n}={config.get(n)}" for n in names)


# ---------------------------------------------------------------------- Part B helpers


def table_events() -> list[tuple[str, str | None]]:
    """Profile updates: several versions per key, deletions, and a key that comes back after its deletion."""
    events: list[tuple[str, str | None]] = []
    users = [f"user-{n:02d}" for n in range(24)]
    for version in range(4):
        for n, user in enumerate(users):
            if version <= n % 4:
                events.append((user, json.dumps({"user": user, "version": version, "name": f"name-{n}-v{version}"})))
    for user in users[::5]:  # user-00, -05, -10, -15, -20 are deleted (user-00 after a single version)
        events.append((user, None))
    events.append(("user-10", json.dumps({"user": "user-10", "version": 9, "name": "back again"})))
    return events


def replay(events) -> dict[str, str]:
    """What a table must hold: the last value per key, tombstones removing the key."""
    table: dict[str, str] = {}
    for key, value in events:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def learner_table(kafka, impl, topic: str, when: str) -> dict:
    did = f"called build_table(bootstrap, {topic!r}) {when}"
    try:
        table = impl.build_table(kafka.bootstrap_servers, topic)
    except Exception as exc:  # the learner's code failed: say so in their terms
        nudge = ("after compaction a partition's offsets have gaps. How do you know you reached its end?"
                 if "compacted the topic" in when else
                 "a compacted topic holds records whose value is None. What does such a record mean?")
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="a dict key -> latest value",
                nudge=nudge)
    if not isinstance(table, dict):
        explain(did=did, saw=f"it returned {type(table).__name__}", expected="a dict key -> latest value")
    return table


def compare(did: str, got: dict, want: dict, deleted: set[str], values_only: bool = False) -> None:
    """Fail on the first difference, deleted keys first; values_only compares only the live keys' values."""
    stale_deleted = sorted(k for k in deleted if k in got)
    if stale_deleted:
        k = stale_deleted[0]
        explain(did=did, saw=f"{len(stale_deleted)} deleted keys still in the table, e.g. {k!r} -> {got[k]!r}",
                expected=f"{k!r} absent: its last record is a tombstone (value None)",
                nudge="how does a producer delete a key from a compacted topic, and how should a reader react?")
    missing = sorted(set(want) - set(got))
    if missing:
        explain(did=did, saw=f"{len(got)} keys; missing {missing[:4]}", expected=f"{len(want)} keys",
                nudge="read every partition up to its end. A key deleted earlier can be written again.")
    wrong = sorted(k for k in want if got.get(k) != want[k])
    if wrong:
        k = wrong[0]
        explain(did=did, saw=f"{len(wrong)} keys with another value, e.g. {k!r} -> {got.get(k)!r}",
                expected=f"{k!r} -> {want[k]!r} (the last value written for that key)",
                nudge="a key's records are kept in the order they were written. Which one is current?")
    extra = sorted(set(got) - set(want))
    if extra and not values_only:
        explain(did=did, saw=f"keys nobody wrote a live value for: {extra[:4]}",
                expected="only keys whose last record has a value",
                nudge="some records in a compacted topic have no value at all.")


def superseded(kafka, topic: str, keys: set[str]) -> int:
    """How many records on the broker are older versions of a key (compaction removes these)."""
    counts = Counter(r.key_text for r in kafka.read_all(topic, timeout=10) if r.key_text in keys)
    return sum(n - 1 for n in counts.values())


# ---------------------------------------------------------------------- Part A checks


def test_audit_log_is_kept_for_years(kafka, impl):
    """The audit topic deletes by time only, after at least 7 years, never by size."""
    config = create_scenarios(kafka, impl)["audit"]
    retention = int(config.get("retention.ms") or 0)
    ok = policy(config) == {"delete"} and (retention == -1 or retention >= SEVEN_YEARS_MS) \
        and config.get("retention.bytes") == "-1"
    if not ok:
        explain(did="created the scenario topics and described the audit topic's configs",
                saw=show(config, "cleanup.policy", "retention.ms", "retention.bytes"),
                expected=f"cleanup.policy=delete, retention.ms of 7 years ({SEVEN_YEARS_MS}) or more (-1 = "
                "forever), retention.bytes=-1",
                nudge="an audit trail answers 'what happened to X?' years later, for every X. What would a size "
                "limit, or compaction by key, throw away? What is the broker's default retention?")


def test_metrics_are_bounded_by_time_and_size(kafka, impl):
    """The metrics topic keeps 3 days and at most metrics_max_bytes per partition, in segments small enough."""
    config = create_scenarios(kafka, impl)["metrics"]
    segment = int(config.get("segment.bytes") or 0)
    ok = policy(config) == {"delete"} and config.get("retention.ms") == str(3 * DAY_MS) \
        and config.get("retention.bytes") == str(METRICS_MAX_BYTES) and 0 < segment <= METRICS_MAX_BYTES // 4
    if not ok:
        explain(did=f"created the scenario topics (metrics_max_bytes={METRICS_MAX_BYTES}) and described the "
                "metrics topic's configs",
                saw=show(config, "cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes"),
                expected=f"cleanup.policy=delete, retention.ms={3 * DAY_MS}, retention.bytes={METRICS_MAX_BYTES}, "
                f"segment.bytes at most {METRICS_MAX_BYTES // 4}",
                nudge="a burst of metrics must not fill the disk, and week-old metrics are worthless. Retention "
                "deletes whole closed segments: how big can a partition grow past its bound while the current "
                "segment is still open?")


def test_profiles_keep_the_latest_value_per_key(kafka, impl):
    """The profiles topic is compacted, with no time or size deletion."""
    config = create_scenarios(kafka, impl)["profiles"]
    pol = policy(config)
    deletes = "delete" in pol and (config.get("retention.ms") != "-1" or config.get("retention.bytes") != "-1")
    if "compact" not in pol or deletes:
        explain(did="created the scenario topics and described the profiles topic's configs",
                saw=show(config, "cleanup.policy", "retention.ms", "retention.bytes"),
                expected="cleanup.policy=compact (the latest profile of every user kept for as long as the user "
                "exists)",
                nudge="with time-based deletion, a user who has not changed their profile for a while loses it; "
                "with no deletion at all, every old version is kept forever. Which policy keeps exactly the "
                "latest record per key?")


def test_carts_are_compacted_and_expire(kafka, impl):
    """The carts topic keeps the latest cart per key and drops carts untouched for 30 days."""
    config = create_scenarios(kafka, impl)["carts"]
    if policy(config) != {"compact", "delete"} or config.get("retention.ms") != str(30 * DAY_MS):
        explain(did="created the scenario topics and described the carts topic's configs",
                saw=show(config, "cleanup.policy", "retention.ms"),
                expected=f"both compaction and deletion, with retention.ms={30 * DAY_MS}",
                nudge="cleanup.policy takes a list.")


# ---------------------------------------------------------------------- Part B checks


def _before_compaction(kafka, impl):
    # A compacted topic with the default segment settings: nothing is cleaned during a check,
    # so every superseded version and every tombstone is still there when build_table reads.
    topic = kafka.create_topic(partitions=3, config={"cleanup.policy": "compact"})
    events = table_events()
    kafka.produce(topic, events, **{"enable.idempotence": True})
    keys = {k for k, _ in events}
    if superseded(kafka, topic, keys) == 0:
        explain(did="wrote several versions per key to a compacted topic with default segments",
                saw="no older version left on the broker", expected="every version still there (no check of yours)")
    return topic, events, learner_table(kafka, impl, topic, "on a compacted topic holding every version")


def test_latest_value_wins(kafka, impl):
    """build_table() maps each key to the last value written for it."""
    topic, events, got = _before_compaction(kafka, impl)
    want = replay(events)
    did = (f"wrote {len(events)} records (1 to 4 versions of 24 keys, some deleted) to a 3-partition compacted "
           "topic, then called build_table and compared the keys that are still alive")
    compare(did, got, want, set(), values_only=True)


def test_tombstones_delete_keys(kafka, impl):
    """build_table() drops a key whose last record is a tombstone, and keeps one written again after it."""
    topic, events, got = _before_compaction(kafka, impl)
    want = replay(events)
    deleted = {k for k, _ in events} - set(want)
    tombstoned = sorted(k for k, v in events if v is None)
    did = (f"wrote versions of 24 keys, then tombstones (value None) for {tombstoned}, then a new value for "
           "user-10, then called build_table")
    compare(did, got, want, deleted)


def test_table_survives_compaction(kafka, impl):
    """After the broker compacts the topic for real, build_table() still gives the same table."""
    topic = kafka.create_topic(partitions=2, config=FAST_COMPACTION)
    events = table_events()
    kafka.produce(topic, events, **{"enable.idempotence": True})
    keys = {k for k, _ in events}
    before = superseded(kafka, topic, keys)
    # The cleaner never touches the open (active) segment, and a segment closes only when a
    # record arrives after segment.ms: keep appending a harmless tombstone to every partition
    # until the broker has removed the superseded versions.
    deadline = time.monotonic() + 45
    left = before
    while left and time.monotonic() < deadline:
        producer = kafka.producer()
        for partition in range(2):
            producer.produce(topic, key=ROLL_KEY, value=None, partition=partition)
        producer.flush(10)
        time.sleep(0.3)  # lets segment.ms (100 ms) pass before the next roll-forcing append
        left = superseded(kafka, topic, keys)
    if left:
        explain(did=f"wrote {len(events)} records ({before} superseded versions) to a topic with "
                f"{FAST_COMPACTION} and forced segment rolls for 45 s",
                saw=f"{left} superseded versions still on the broker",
                expected="the log cleaner to remove them (this is the grader's broker, not your code: run again, "
                "and report it if it persists)")
    want = replay(events)
    deleted = keys - set(want)
    got = learner_table(kafka, impl, topic, "after the broker compacted the topic")
    compare(f"wrote {len(events)} records, waited until the broker compacted away all {before} superseded "
            "versions (the offsets now have gaps), then called build_table", got, want, deleted)
