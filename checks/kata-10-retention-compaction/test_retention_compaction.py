"""Hidden checks for kata-10 (retention and compaction). Never shown to learners."""

import threading
import time

import pytest
from _kata10_support import (
    IN_ORDER,
    RETURN_WITHIN_S,
    Writer,
    call_build_table,
    check_no_aborted,
    compare,
    placed_events,
    produce_placed,
    replay,
    superseded,
    table_events,
    transactional_tail,
)
from confluent_kafka.admin import ConfigResource, ConfigSource

from grader.kit import explain, pictures, wait_for

DAY_MS = 24 * 3600 * 1000
SEVEN_YEARS_MS = 7 * 365 * DAY_MS
# Not the README's 64 MiB example, and no round number: the limit must come from the parameter.
METRICS_MAX_BYTES = 20 * 1024 * 1024 + 12_288
SCENARIOS = ("audit", "metrics", "profiles", "carts")
ROLL_KEY = "~segment-roll"  # the checks' own tombstones that close the active segment
SET_ON_TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value

# A compacted topic the broker cleans within a check's patience: segments roll 100 ms after
# they open (on the next append), any dirty data is worth cleaning, tombstones may go quickly.
FAST_COMPACTION = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
                   "delete.retention.ms": "100", "min.compaction.lag.ms": "0"}

_CACHE: dict = {}  # results one learner call gives several checks (computed by whichever check runs first)


# ---------------------------------------------------------------------- Part A helpers


def describe(kafka, topic: str) -> dict[str, tuple[str, bool]]:
    """{config name: (value, set on the topic itself?)}, as the broker says."""
    resource = ConfigResource("topic", topic)
    entries = kafka.admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: (entry.value, entry.source == SET_ON_TOPIC) for name, entry in entries.items()}


def wait_for_topics(kafka, names: dict[str, str], did: str) -> None:
    def exist() -> bool:
        listed = kafka.admin.list_topics(timeout=10).topics
        return all(t in listed and not listed[t].error for t in names.values())
    deadline = time.monotonic() + 10  # creation is asynchronous on the broker: give it a moment, no more
    while not exist():
        if time.monotonic() > deadline:
            listed = kafka.admin.list_topics(timeout=10).topics
            absent = [f"{s}: {t}" for s, t in names.items() if t not in listed]
            explain(did=did + ", then looked the topics up", saw=f"no topic for {absent}",
                    expected="one topic per scenario, with the name given for it")
        time.sleep(0.1)


def scenario_configs(kafka, impl) -> dict[str, dict]:
    """Call create_retention_topics once per run; every Part A check reads its scenario's configs."""
    if "configs" not in _CACHE:
        names = {s: kafka.unique(s) for s in SCENARIOS}
        kafka.created_topics.extend(names.values())  # the kit deletes them afterwards
        did = f"called create_retention_topics(bootstrap, {{scenario: topic}}, metrics_max_bytes={METRICS_MAX_BYTES})"
        try:
            impl.create_retention_topics(kafka.bootstrap_servers, dict(names), METRICS_MAX_BYTES)
        except Exception as exc:  # the learner's code failed: say so in their terms
            explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="all four topics created",
                    seen_in="your function",
                    nudge="read the exception: which setting did the broker refuse, and why?")
        wait_for_topics(kafka, names, did)
        _CACHE["configs"] = {scenario: describe(kafka, topic) for scenario, topic in names.items()}
    return _CACHE["configs"]


def value(config: dict, name: str) -> str | None:
    return config.get(name, (None, False))[0]


def policy(config: dict) -> set[str]:
    return {p.strip() for p in (value(config, "cleanup.policy") or "").split(",") if p.strip()}


def show(config: dict, *names: str) -> str:
    return ", ".join(f"{n}={value(config, n)}" + ("" if config.get(n, (0, True))[1] else " (broker default)")
                     for n in names)


def not_on_topic(config: dict, *names: str) -> list[str]:
    """The configs the scenario depends on that the topic leaves to the broker's defaults."""
    return [n for n in names if not config.get(n, (None, False))[1]]


def config_table(topic: str, config: dict, rows: list[tuple[str, str, bool]], required=()) -> None:
    """Expected vs seen, one config per row: (name, what the scenario needs, whether the topic's value does);
    required: the configs that must be set on the topic itself, not left to the broker's defaults."""
    shown, bad = [], []
    for i, (name, want, ok) in enumerate(rows):
        on_topic = config.get(name, (None, False))[1]
        shown.append([name, want, str(value(config, name)), "the topic" if on_topic else "broker default"])
        if not ok or (name in required and not on_topic):
            bad.append(i)
    pictures.attach(pictures.table(f"The {topic} topic's configs: expected vs seen",
                                   ["config", "expected", "seen", "set by"], shown, bad))


DEFAULTS_NUDGE = (" The broker's defaults are a cluster operator's choice (log.cleanup.policy, log.retention.ms, "
                  "log.retention.bytes): set what the scenario depends on on the topic itself.")


# ---------------------------------------------------------------------- Part A checks


def test_audit_log_is_kept_for_years(kafka, impl):
    """The audit topic deletes by time only, after at least 7 years, never by size (all set on the topic)."""
    config = scenario_configs(kafka, impl)["audit"]
    retention = int(value(config, "retention.ms") or 0)
    defaulted = not_on_topic(config, "cleanup.policy", "retention.ms", "retention.bytes")
    ok = policy(config) == {"delete"} and (retention == -1 or retention >= SEVEN_YEARS_MS) \
        and value(config, "retention.bytes") == "-1" and not defaulted
    if not ok:
        config_table("audit", config, [("cleanup.policy", "delete", policy(config) == {"delete"}),
                                       ("retention.ms", f">= {SEVEN_YEARS_MS} or -1",
                                        retention == -1 or retention >= SEVEN_YEARS_MS),
                                       ("retention.bytes", "-1", value(config, "retention.bytes") == "-1")],
                     ("cleanup.policy", "retention.ms", "retention.bytes"))
        explain(did="created the scenario topics and described the audit topic's configs",
                saw=show(config, "cleanup.policy", "retention.ms", "retention.bytes"),
                expected=f"cleanup.policy=delete, retention.ms of 7 years ({SEVEN_YEARS_MS} ms) or more (-1 = "
                "forever), retention.bytes=-1, each set on the topic",
                nudge="an audit trail answers 'what happened to X?' years later, for every X. What would a size "
                "limit, or compaction by key, throw away? In what unit is retention.ms?"
                + (DEFAULTS_NUDGE if defaulted else ""))


def test_metrics_are_bounded_by_time_and_size(kafka, impl):
    """The metrics topic keeps 3 days and at most metrics_max_bytes per partition, in segments small enough."""
    config = scenario_configs(kafka, impl)["metrics"]
    segment = int(value(config, "segment.bytes") or 0)
    defaulted = not_on_topic(config, "cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes")
    ok = policy(config) == {"delete"} and value(config, "retention.ms") == str(3 * DAY_MS) \
        and value(config, "retention.bytes") == str(METRICS_MAX_BYTES) and 0 < segment <= METRICS_MAX_BYTES // 4 \
        and not defaulted
    if not ok:
        config_table("metrics", config, [
            ("cleanup.policy", "delete", policy(config) == {"delete"}),
            ("retention.ms", str(3 * DAY_MS), value(config, "retention.ms") == str(3 * DAY_MS)),
            ("retention.bytes", str(METRICS_MAX_BYTES), value(config, "retention.bytes") == str(METRICS_MAX_BYTES)),
            ("segment.bytes", f"<= {METRICS_MAX_BYTES // 4}", 0 < segment <= METRICS_MAX_BYTES // 4)],
            ("cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes"))
        explain(did=f"created the scenario topics with metrics_max_bytes={METRICS_MAX_BYTES} and described the "
                "metrics topic's configs",
                saw=show(config, "cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes"),
                expected=f"cleanup.policy=delete, retention.ms={3 * DAY_MS}, retention.bytes={METRICS_MAX_BYTES} "
                f"(the parameter), segment.bytes at most {METRICS_MAX_BYTES // 4}, each set on the topic",
                nudge="a burst of metrics must not fill the disk, and week-old metrics are worthless. Retention "
                "deletes whole closed segments: how big can a partition grow past its bound while the current "
                "segment is still open?" + (DEFAULTS_NUDGE if defaulted else ""))


def test_profiles_keep_the_latest_value_per_key(kafka, impl):
    """The profiles topic is compacted, with no time or size deletion."""
    config = scenario_configs(kafka, impl)["profiles"]
    pol = policy(config)
    deletes = "delete" in pol and (value(config, "retention.ms") != "-1" or value(config, "retention.bytes") != "-1")
    defaulted = not_on_topic(config, "cleanup.policy")
    if "compact" not in pol or deletes or defaulted:
        config_table("profiles", config, [("cleanup.policy", "compact", "compact" in pol and not deletes),
                                          ("retention.ms", "-1 if delete is in the policy", not deletes),
                                          ("retention.bytes", "-1 if delete is in the policy", not deletes)],
                     ("cleanup.policy",))
        explain(did="created the scenario topics and described the profiles topic's configs",
                saw=show(config, "cleanup.policy", "retention.ms", "retention.bytes"),
                expected="cleanup.policy=compact, set on the topic (the latest profile of every user kept for as "
                "long as the user exists)",
                nudge="with time-based deletion, a user who has not changed their profile for a while loses it; "
                "with no deletion at all, every old version is kept forever. Which policy keeps exactly the "
                "latest record per key?" + (DEFAULTS_NUDGE if defaulted else ""))


def test_carts_are_compacted_and_expire(kafka, impl):
    """The carts topic keeps the latest cart per key, never drops it for volume, and drops it after 30 days."""
    config = scenario_configs(kafka, impl)["carts"]
    defaulted = not_on_topic(config, "cleanup.policy", "retention.ms")
    if policy(config) != {"compact", "delete"} or value(config, "retention.ms") != str(30 * DAY_MS) \
            or value(config, "retention.bytes") != "-1" or defaulted:
        config_table("carts", config, [
            ("cleanup.policy", "compact,delete", policy(config) == {"compact", "delete"}),
            ("retention.ms", str(30 * DAY_MS), value(config, "retention.ms") == str(30 * DAY_MS)),
            ("retention.bytes", "-1", value(config, "retention.bytes") == "-1")], ("cleanup.policy", "retention.ms"))
        explain(did="created the scenario topics and described the carts topic's configs",
                saw=show(config, "cleanup.policy", "retention.ms", "retention.bytes", "delete.retention.ms"),
                expected=f"both compaction and deletion, retention.ms={30 * DAY_MS} (set on the topic), no size "
                "limit (retention.bytes=-1)",
                nudge="cleanup.policy takes a list. Which setting removes whole old segments after a time, and "
                "which one only says how long a tombstone stays? A size limit would drop carts still in use."
                + (DEFAULTS_NUDGE if defaulted else ""))


def test_refused_topic_raises(kafka, impl):
    """create_retention_topics() raises when the broker refuses one of the topics."""
    names = {s: kafka.unique(s) for s in ("audit", "metrics", "carts", "profiles")}
    kafka.created_topics.extend(names.values())
    kafka.create_topic(names["profiles"])  # already there: the broker refuses to create it again
    did = (f"created topic {names['profiles']!r} first, then called create_retention_topics with it as the "
           "profiles topic (the last of four in the dict)")
    try:
        impl.create_retention_topics(kafka.bootstrap_servers, dict(names), METRICS_MAX_BYTES)
    except Exception:  # noqa: BLE001 - any exception is what the contract asks for
        return
    explain(did=did, saw="it returned normally", expected="an exception (the broker answered TOPIC_ALREADY_EXISTS "
            "for that topic)", seen_in="your function",
            nudge="AdminClient.create_topics() only sends the request: it returns a future per topic. What tells "
            "you the broker's answer for each of them?")


# ---------------------------------------------------------------------- Part B checks


def outcome(call):
    """A learner call's table, or its failure to re-raise in whichever check needs that call."""
    try:
        return call()
    except pytest.fail.Exception as failure:
        return failure


def table_of(result) -> dict:
    if isinstance(result, BaseException):
        raise result
    return result


def _before_compaction(kafka, impl) -> dict:
    """A 4-partition compacted topic holding every version; build_table called on it twice (cached per run)."""
    if "placed" in _CACHE:
        return _CACHE["placed"]
    # Default segment settings: nothing is cleaned during a check, so every superseded version
    # and every tombstone is still there when build_table reads.
    # compact,delete with no time or size limit behaves as compact and also allows deleting records.
    topic = kafka.create_topic(partitions=4, config={"cleanup.policy": "compact,delete", "retention.ms": "-1",
                                                     "retention.bytes": "-1"})
    placed, tail = placed_events(), transactional_tail()
    produce_placed(kafka, topic, placed, 1, tail)
    events = [e for p in sorted(placed) for e in placed[p] + (tail if p == 1 else [])]
    did = (f"wrote {len(events)} records to a 4-partition compacted topic (one partition empty, one ending with a "
           "committed transaction after an aborted one, keys deleted, one deleted key written again, timestamps "
           "not in write order, non-ASCII text, an empty value, the first records of one partition deleted), then "
           "called build_table")
    first = outcome(lambda: call_build_table(kafka, impl, topic, did, "a compacted topic holds records whose value "
                                             "is None. What does such a record mean?"))
    did2 = did + " a second time on the same, unchanged topic"
    second = outcome(lambda: call_build_table(
        kafka, impl, topic, did2, "the second call raised where the first did not: does your reader depend on "
        "what an earlier call committed?", nudge_hang="the first call returned, the second one on the same data did "
        "not: does your reader start where an earlier call (or its group's committed offsets) left off?"))
    _CACHE["placed"] = {"events": events, "want": replay(events), "did": did, "tables": (first, second),
                        "did2": did2}
    return _CACHE["placed"]


def test_latest_value_wins(kafka, impl):
    """build_table() maps each key to the last value written for it, on every call."""
    case = _before_compaction(kafka, impl)
    first, second = case["tables"]
    check_no_aborted(case["did"], table_of(first))
    compare(case["did"] + " and compared the keys that are still alive", table_of(first), case["want"], set(),
            values_only=True)
    compare(case["did2"] + " (the first call gave the right table)", table_of(second), case["want"], set(),
            values_only=True)


def test_tombstones_delete_keys(kafka, impl):
    """build_table() drops a key whose last record is a tombstone, and keeps one written again after it."""
    case = _before_compaction(kafka, impl)
    deleted = {k for k, *_ in case["events"]} - set(case["want"])
    compare(case["did"] + f"; deleted for good: {sorted(deleted)}", table_of(case["tables"][0]), case["want"],
            deleted)


def test_reads_up_to_the_end_at_call_start(kafka, impl):
    """build_table() stops at the end each partition had when it started, even while others keep writing."""
    topic = kafka.create_topic(partitions=3, config={"cleanup.policy": "compact"})
    events = table_events()
    kafka.produce(topic, events, **IN_ORDER)
    writer = Writer(kafka, topic, 3)
    writer.start()
    wait_for(lambda: writer.sent > 0, 10, "the checks' own producer to start writing")
    did = (f"wrote {len(events)} records to a 3-partition compacted topic, kept appending records of keys "
           "live-0..live-2 to every partition every 20 ms, and called build_table meanwhile")
    try:
        got = call_build_table(kafka, impl, topic, did, "read the exception: did your code trip over a record?")
    finally:
        writer.stop()
    want = replay(events)
    compare(did, got, want, {k for k, _ in events} - set(want), ignore=lambda k: k.startswith("live-"))


def test_table_survives_compaction(kafka, impl):
    """After the broker compacts the topic for real, build_table() still gives the same table."""
    topic = kafka.create_topic(partitions=2, config=FAST_COMPACTION)
    events = table_events()
    kafka.produce(topic, events, **IN_ORDER)
    keys = {k for k, _ in events}
    before = superseded(kafka, topic, keys)
    # The cleaner never touches the open (active) segment, and a segment closes only when a
    # record arrives after segment.ms: keep appending a harmless tombstone to every partition
    # until the broker has removed the superseded versions.
    deadline = time.monotonic() + 45
    left = before
    producer = kafka.producer()
    while left and time.monotonic() < deadline:
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
    got = call_build_table(kafka, impl, topic, f"wrote {len(events)} records, waited until the broker compacted "
                           f"away all {before} superseded versions (the offsets now have gaps), then called "
                           "build_table", "after compaction a partition's offsets have gaps. How do you know you "
                           "reached its end?")
    compare(f"wrote {len(events)} records, waited until the broker compacted away all {before} superseded "
            "versions (the offsets now have gaps), then called build_table", got, want, keys - set(want))


def test_missing_topic_raises(kafka, impl):
    """build_table() raises for a topic that does not exist, rather than returning an empty table."""
    topic = kafka.unique("no-such-topic")  # never created; the broker does not auto-create topics
    did = f"called build_table(bootstrap, {topic!r}) for a topic that does not exist"
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = impl.build_table(kafka.bootstrap_servers, topic)
        except Exception as exc:  # noqa: BLE001 - any exception is what the contract asks for
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(RETURN_WITHIN_S)
    if "error" in outcome:
        return
    saw = f"it returned {outcome['result']!r}" if "result" in outcome else \
        f"it had not returned after {RETURN_WITHIN_S:.0f}s"
    explain(did=did, saw=saw, expected="an exception naming the problem", seen_in="your function",
            nudge="the metadata the consumer gets for a topic carries an error when the topic is unknown. An empty "
            "table looks like a valid answer, and hides a misspelt topic name.")
