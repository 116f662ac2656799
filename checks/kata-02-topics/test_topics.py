"""Hidden checks for kata-02 (topics). Never shown to learners."""

import re
from collections import defaultdict

from confluent_kafka import TopicCollection
from confluent_kafka.admin import ConfigResource, ConfigSource

from grader.kit import explain

DAY_MS = 24 * 3600 * 1000
WANTED_RF, WANTED_MIN_ISR = 3, 2
KEYS = [f"customer-{n:03d}" for n in range(40)]


# ---------------------------------------------------------------------- what the broker says


def broker_count(kafka) -> int:
    return len(kafka.admin.list_topics(timeout=10).brokers)


def describe(kafka, topic: str):
    """(partition count, {partition: replica count}, {partition: leader id}) as the broker reports it."""
    desc = kafka.admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=30)
    return (len(desc.partitions), {p.id: len(p.replicas) for p in desc.partitions},
            {p.id: (p.leader.id if p.leader is not None else -1) for p in desc.partitions})


def topic_config(kafka, topic: str) -> dict:
    resource = ConfigResource("topic", topic)
    return kafka.admin.describe_configs([resource])[resource].result(timeout=30)


def call(did: str, fn, *args, nudge: str = "read the exception: what did the broker (or your code) refuse?",
         **kwargs):
    """Call learner code; an unexpected exception becomes a teaching failure."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        explain(did=did, saw="NotImplementedError: the function is still the stub", expected="it to work")
    except Exception as exc:  # the learner's code failed: say so in their terms
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="it to return normally",
                nudge=nudge)


def ensure(kafka, impl, topic, partitions, retention_ms):
    kafka.created_topics.append(topic)  # the kit deletes it afterwards
    call(f"called ensure_topic(bootstrap, {topic!r}, partitions={partitions}, retention_ms={retention_ms}, "
         f"wanted_rf={WANTED_RF}, wanted_min_isr={WANTED_MIN_ISR})",
         impl.ensure_topic, kafka.bootstrap_servers, topic, partitions, retention_ms,
         wanted_rf=WANTED_RF, wanted_min_isr=WANTED_MIN_ISR,
         nudge="the grader's cluster may have fewer brokers than production. What does the error say the "
         "broker refused?")


def probes_on_broker(kafka, topic: str, skip: set) -> dict[str, set[int]]:
    """Partitions where each key's probe records are, ignoring records already seen (partition, offset)."""
    where = defaultdict(set)
    for r in kafka.read_all(topic, timeout=15):
        if (r.partition, r.offset) not in skip:
            where[r.key_text].add(r.partition)
            skip.add((r.partition, r.offset))
    return where


def check_probe_report(kafka, impl, topic: str, partitions: int, seen: set) -> dict[str, int]:
    did = f"called key_partitions(bootstrap, topic, <{len(KEYS)} keys>) on a {partitions}-partition topic"
    report = call(did, impl.key_partitions, kafka.bootstrap_servers, topic, KEYS)
    if not isinstance(report, dict) or set(report) != set(KEYS):
        missing = sorted(set(KEYS) - set(report or {}))
        explain(did=did, saw=f"it returned {type(report).__name__} with {len(report or {})} keys "
                f"(missing e.g. {missing[:3]})",
                expected="a dict with every key, mapped to the partition its record landed on",
                nudge="produce() returns before the record is sent. Where does the client tell you what became "
                "of a record?")
    actual = probes_on_broker(kafka, topic, seen)
    for key in KEYS:
        if actual.get(key) != {report[key]}:
            explain(did=did + ", then read the topic back",
                    saw=f"key {key!r} reported on partition {report[key]!r}, but its probe is on partition(s) "
                    f"{sorted(actual.get(key, set()))}",
                    expected="each key's reported partition to be where the broker stored its record",
                    nudge="the partitioner runs in the producer, with the partition count the producer knows. "
                    "Report what the delivery report says, not a guess.")
    return report


# ---------------------------------------------------------------------- checks


REPLICATION_CASES = [(1, 3, 2, (1, 1)), (2, 3, 2, (2, 2)), (3, 3, 2, (3, 2)), (5, 3, 2, (3, 2)), (6, 1, 1, (1, 1)),
                     (4, 4, 3, (4, 3))]


def test_replication_choice_fits_any_cluster(impl):
    """choose_replication() fits the replication factor and min.insync.replicas to clusters of 1 to 6 brokers."""
    for brokers, rf, min_isr, want in REPLICATION_CASES:
        did = f"called choose_replication(broker_count={brokers}, wanted_rf={rf}, wanted_min_isr={min_isr})"
        got = call(did, impl.choose_replication, brokers, rf, min_isr)
        if tuple(got or ()) != want:
            explain(did=did, saw=f"{got!r}", expected=f"{want!r}",
                    nudge="each replica of a partition lives on a different broker, and acks=all can only wait "
                    "for copies that exist. Which wish does a small cluster force you to shrink, and what does "
                    "that do to the other one?")


def test_choose_replication_rejects_an_empty_cluster(impl):
    """choose_replication() refuses a cluster with no brokers."""
    try:
        got = impl.choose_replication(0, WANTED_RF, WANTED_MIN_ISR)
    except ValueError:
        return
    except Exception as exc:
        explain(did="called choose_replication(broker_count=0, 3, 2)", saw=f"{type(exc).__name__}: {exc}",
                expected="ValueError")
    explain(did="called choose_replication(broker_count=0, 3, 2)", saw=f"it returned {got!r}",
            expected="ValueError: no replication factor fits a cluster without brokers")


def test_replication_fits_the_cluster(kafka, impl):
    """ensure_topic() creates a topic whose replication factor and min.insync.replicas fit the real cluster."""
    topic = kafka.unique("fit")
    ensure(kafka, impl, topic, 3, 2 * DAY_MS)
    brokers = broker_count(kafka)
    want_rf, want_isr = min(WANTED_RF, brokers), min(WANTED_MIN_ISR, WANTED_RF, brokers)
    _, replicas, _ = describe(kafka, topic)
    if set(replicas.values()) != {want_rf}:
        explain(did=f"called ensure_topic(wanted_rf={WANTED_RF}) on a cluster whose metadata lists {brokers} "
                "broker(s), then described the topic",
                saw=f"replicas per partition: {replicas}", expected=f"{want_rf} replicas for every partition",
                nudge="the replication factor is capped by the number of brokers. Where can your code read "
                "that number, instead of assuming it?")
    entry = topic_config(kafka, topic)["min.insync.replicas"]
    if entry.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value or entry.value != str(want_isr):
        where = "set on the topic" if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value else \
            "not set on the topic (inherited from the broker)"
        explain(did="described the topic's configs after ensure_topic(wanted_rf=3, wanted_min_isr=2)",
                saw=f"min.insync.replicas = {entry.value}, {where}; replication factor {want_rf}",
                expected=f"min.insync.replicas = {want_isr}, set on the topic",
                nudge="acks=all waits for min.insync.replicas copies. How many copies does this topic have? "
                "A topic config set explicitly does not depend on each broker's defaults.")


def test_topic_has_partitions_and_retention(kafka, impl):
    """ensure_topic() creates the topic with the asked partitions and retention.ms, each partition led."""
    topic = kafka.unique("shape")
    ensure(kafka, impl, topic, 5, 3 * DAY_MS)
    count, _, leaders = describe(kafka, topic)
    if count != 5 or any(leader < 0 for leader in leaders.values()):
        explain(did="called ensure_topic(partitions=5) and described the topic right after it returned",
                saw=f"{count} partitions, leaders {leaders}", expected="5 partitions, each with a leader",
                nudge="topic creation finishes asynchronously; return only when clients can use every partition.")
    entry = topic_config(kafka, topic)["retention.ms"]
    if entry.value != str(3 * DAY_MS) or entry.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value:
        explain(did=f"called ensure_topic(retention_ms={3 * DAY_MS}) and described the topic's configs",
                saw=f"retention.ms = {entry.value} ({'topic config' if entry.source == 1 else 'broker default'})",
                expected=f"retention.ms = {3 * DAY_MS}, set on the topic",
                nudge="topic-level settings are passed when the topic is created, as its config.")


def test_identical_existing_topic_is_fine(kafka, impl):
    """ensure_topic() on a topic that already exists exactly as asked is a quiet no-op."""
    topic = kafka.unique("again")
    ensure(kafka, impl, topic, 4, DAY_MS)
    try:
        impl.ensure_topic(kafka.bootstrap_servers, topic, 4, DAY_MS, wanted_rf=WANTED_RF,
                          wanted_min_isr=WANTED_MIN_ISR)
    except Exception as exc:
        explain(did="called ensure_topic twice with the same arguments (a service restarting)",
                saw=f"the second call raised {type(exc).__name__}: {exc}",
                expected="the second call to return quietly: the topic is already what was asked",
                nudge="every instance of a service runs its start-up code. 'Already exists' is only a problem "
                "when what exists is not what you wanted.")
    count, _, _ = describe(kafka, topic)
    retention = topic_config(kafka, topic)["retention.ms"].value
    if count != 4 or retention != str(DAY_MS):
        explain(did="called ensure_topic twice with the same arguments", saw=f"{count} partitions, "
                f"retention.ms={retention}", expected=f"4 partitions, retention.ms={DAY_MS}")


def test_conflicting_partitions_raise(kafka, impl):
    """ensure_topic() on an existing topic with another partition count raises TopicConflict naming it."""
    check_conflict(kafka, impl, "partitions")


def test_conflicting_retention_raises(kafka, impl):
    """ensure_topic() on an existing topic with another retention.ms raises TopicConflict naming it."""
    check_conflict(kafka, impl, "retention.ms")


def check_conflict(kafka, impl, conflict: str) -> None:
    have_parts, want_parts = 3, (6 if conflict == "partitions" else 3)
    have_ret, want_ret = DAY_MS, (DAY_MS if conflict == "partitions" else 2 * DAY_MS)
    topic = kafka.create_topic(partitions=have_parts, config={"retention.ms": str(have_ret)})
    did = (f"created {topic} with {have_parts} partitions and retention.ms={have_ret}, then called "
           f"ensure_topic(partitions={want_parts}, retention_ms={want_ret})")
    have, want = (have_parts, want_parts) if conflict == "partitions" else (have_ret, want_ret)
    try:
        impl.ensure_topic(kafka.bootstrap_servers, topic, want_parts, want_ret, wanted_rf=WANTED_RF,
                          wanted_min_isr=WANTED_MIN_ISR)
    except impl.TopicConflict as exc:
        text = str(exc)
        numbers = set(re.findall(r"\d+", text.replace(topic, "<topic>")))
        word = "partition" if conflict == "partitions" else "retention"
        if word not in text.lower() or not {str(have), str(want)} <= numbers:
            explain(did=did, saw=f"TopicConflict({text!r})",
                    expected=f"a message naming {conflict!r}, the existing value {have} and the asked value {want}",
                    nudge="the person reading this error at 3 a.m. needs to know what differs, without "
                    "running any tool.")
    except Exception as exc:
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="TopicConflict naming "
                f"{conflict!r}", nudge="'already exists' alone does not say whether the topic is usable.")
    else:
        explain(did=did, saw="it returned normally", expected=f"TopicConflict naming {conflict!r} ({have} vs "
                f"{want})", nudge="a service that silently runs on a topic with another shape than it asked for "
                "breaks its own assumptions (ordering, retention) without anyone noticing.")
    count = kafka.partition_count(topic)
    retention = topic_config(kafka, topic)["retention.ms"].value
    if count != have_parts or retention != str(have_ret):
        explain(did=did, saw=f"the topic now has {count} partitions, retention.ms={retention}",
                expected=f"the existing topic untouched ({have_parts} partitions, retention.ms={have_ret})",
                nudge="changing a live topic is a decision for a person, not a side effect of start-up code.")


def test_key_partitions_match_the_broker(kafka, impl):
    """key_partitions() reports the partition each key's record really landed on."""
    topic = kafka.create_topic(partitions=3)
    check_probe_report(kafka, impl, topic, 3, set())


def test_adding_partitions_moves_keys(kafka, impl):
    """add_partitions() grows a topic, and afterwards some keys land on other partitions."""
    topic = kafka.create_topic(partitions=3)
    seen: set = set()
    before = check_probe_report(kafka, impl, topic, 3, seen)
    call(f"called add_partitions(bootstrap, {topic!r}, 6) on a 3-partition topic", impl.add_partitions,
         kafka.bootstrap_servers, topic, 6)
    count, _, leaders = describe(kafka, topic)
    if count != 6 or any(leader < 0 for leader in leaders.values()):
        explain(did="called add_partitions(topic, 6) on a 3-partition topic and described it right after",
                saw=f"{count} partitions, leaders {leaders}", expected="6 partitions, each with a leader",
                nudge="AdminClient has a call that adds partitions; its result is a future to wait on.")
    after = check_probe_report(kafka, impl, topic, 6, seen)
    moved = {k: (before[k], after[k]) for k in KEYS if before[k] != after[k]}
    if not moved or not any(p >= 3 for p in after.values()):
        explain(did="probed 40 keys before and after growing the topic from 3 to 6 partitions",
                saw=f"{len(moved)} keys changed partition; partitions used after: {sorted(set(after.values()))}",
                expected="the new partitions in use, and so some keys on another partition than before",
                nudge="a producer must learn the new partition count before its partitioner can use it.")


def test_add_partitions_is_idempotent_and_never_shrinks(kafka, impl):
    """add_partitions() to the current size is a no-op, and to a smaller size raises TopicConflict."""
    topic = kafka.create_topic(partitions=4)
    call(f"called add_partitions(bootstrap, {topic!r}, 4) on a 4-partition topic", impl.add_partitions,
         kafka.bootstrap_servers, topic, 4)
    did = f"called add_partitions(bootstrap, {topic!r}, 2) on a 4-partition topic"
    try:
        impl.add_partitions(kafka.bootstrap_servers, topic, 2)
    except impl.TopicConflict:
        pass
    except Exception as exc:
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="TopicConflict",
                nudge="can Kafka ever remove a partition? Say so in your own exception.")
    else:
        explain(did=did, saw="it returned normally", expected="TopicConflict: a topic cannot shrink",
                nudge="what would happen to the records stored in the partitions that would go away?")
    if kafka.partition_count(topic) != 4:
        explain(did=did, saw=f"{kafka.partition_count(topic)} partitions", expected="still 4 partitions")
