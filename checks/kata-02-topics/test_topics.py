"""Hidden checks for kata-02 (topics). Never shown to learners."""

import pytest
from _kata02_support import (
    DAY_MS,
    KEYS,
    WANTED_MIN_ISR,
    WANTED_RF,
    broker_count,
    call,
    check_probe_report,
    conflict_message_problem,
    create_topics,
    describe,
    ensure,
    topic_config,
)
from confluent_kafka.admin import ConfigSource

from grader.kit import KafkaKit, explain
from grader.kit.protocolproxy import CREATE_PARTITIONS, CREATE_TOPICS, BigClusterProxy

# How long the proxy holds the broker's answer to a CreateTopics / CreatePartitions request: a call that
# returns before its client heard that answer returns unconfirmed (short: the reference waits it out).
ANSWER_HOLD_S = 0.2

# The topics the checks start from: (partitions, topic config). Each belongs to one check.
CONFLICTS = {"partitions": ((3, DAY_MS), (6, DAY_MS)), "retention": ((3, DAY_MS), (3, 2 * DAY_MS)),
             "both": ((4, 7 * DAY_MS), (2, 123456789))}
PREMADE = {**{label: (have[0], {"retention.ms": str(have[1])}) for label, (have, _) in CONFLICTS.items()},
           "probe": (7, {}), "refusing": (2, {"max.message.bytes": "16"}), "grow": (2, {}), "shrink": (4, {})}


@pytest.fixture(scope="module")
def premade(bootstrap_servers, pytestconfig):
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{pytestconfig.getoption('--kata-run-id') or 'local'}-k02")
    try:
        yield create_topics(kit, PREMADE)
    finally:
        kit.close()

# ---------------------------------------------------------------------- checks

# (brokers, wanted_rf, wanted_min_isr, expected): caps on both, in the right order, and a floor of 1.
REPLICATION_CASES = [(1, 3, 2, (1, 1)), (2, 3, 2, (2, 2)), (3, 3, 2, (3, 2)), (5, 3, 2, (3, 2)), (6, 1, 1, (1, 1)),
                     (4, 4, 3, (4, 3)), (5, 2, 3, (2, 2)), (2, 5, 1, (2, 1)), (3, 0, 0, (1, 1)), (7, 5, 5, (5, 5))]


def test_replication_choice_fits_any_cluster(impl):
    """choose_replication() fits the replication factor and min.insync.replicas to clusters of 1 to 7 brokers."""
    for brokers, rf, min_isr, want in REPLICATION_CASES:
        did = f"called choose_replication(broker_count={brokers}, wanted_rf={rf}, wanted_min_isr={min_isr})"
        got = call(did, impl.choose_replication, brokers, rf, min_isr)
        if not isinstance(got, (tuple, list)) or tuple(got) != want or any(type(v) is not int for v in got):
            explain(did=did, saw=f"{got!r}", expected=f"{want!r}: (replication_factor, min_insync_replicas) as ints",
                    nudge="each replica of a partition lives on a different broker, and acks=all can only wait "
                    "for copies that exist. Which wish does a small cluster force you to shrink, what does that "
                    "do to the other one, and can either ever be less than 1?", seen_in="your function")


def test_replication_defaults_are_three_and_two(impl):
    """choose_replication() wishes for 3 replicas and min.insync.replicas 2 when not told otherwise."""
    for brokers, want in ((5, (3, 2)), (2, (2, 2)), (1, (1, 1))):
        did = f"called choose_replication({brokers}) with the default wishes"
        got = call(did, impl.choose_replication, brokers)
        if not isinstance(got, (tuple, list)) or tuple(got) != want:
            explain(did=did, saw=f"{got!r}", expected=f"{want!r}", seen_in="your function",
                    nudge="the signature's defaults are part of the contract: wanted_rf=3, wanted_min_isr=2.")


def test_other_creation_errors_are_raised(kafka, impl):
    """ensure_topic() raises the broker's error when it refuses to create the topic for another reason."""
    topic = kafka.unique("refused")
    kafka.created_topics.append(topic)
    did = f"called ensure_topic(bootstrap, {topic!r}, partitions=2, retention_ms=-5): the broker refuses -5"
    try:
        impl.ensure_topic(kafka.bootstrap_servers, topic, 2, -5, wanted_rf=WANTED_RF, wanted_min_isr=WANTED_MIN_ISR)
    except NotImplementedError:
        explain(did=did, saw="NotImplementedError: the function is still the stub", expected="the broker's error",
                seen_in="your function")
    except Exception as exc:  # noqa: BLE001 - any exception type; it must carry the broker's reason
        if "retention.ms" not in str(exc) or isinstance(exc, impl.TopicConflict):
            explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", seen_in="your function",
                    expected="the broker's error (INVALID_CONFIG: invalid value -5 for retention.ms)",
                    nudge="only 'already exists' calls for a comparison. Any other refusal is the answer: "
                    "let it (or its text) reach the caller.")
        return
    explain(did=did, saw="it returned normally", expected="the broker's error (INVALID_CONFIG for retention.ms)",
            nudge="which errors of create_topics() does your code swallow? Only 'already exists' is expected.",
            seen_in="your function")


def test_choose_replication_rejects_an_empty_cluster(impl):
    """choose_replication() refuses a cluster with no brokers (or a negative count)."""
    for brokers in (0, -2):
        did = f"called choose_replication(broker_count={brokers}, 3, 2)"
        try:
            got = impl.choose_replication(brokers, WANTED_RF, WANTED_MIN_ISR)
        except ValueError:
            continue
        except Exception as exc:
            explain(did=did, saw=f"{type(exc).__name__}: {exc}", expected="ValueError", seen_in="your function")
        explain(did=did, saw=f"it returned {got!r}", seen_in="your function",
                expected="ValueError: no replication factor fits a cluster without brokers")


def test_replication_fits_the_cluster(kafka, impl):
    """ensure_topic() creates a topic whose replication factor and min.insync.replicas fit the real cluster."""
    topic = kafka.unique("fit")
    ensure(kafka, impl, topic, 3, 2 * DAY_MS)
    brokers = broker_count(kafka)
    want_rf, want_isr = min(WANTED_RF, brokers), min(WANTED_MIN_ISR, WANTED_RF, brokers)
    _, replicas, _ = describe(kafka, topic, 3)
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


def test_replication_follows_the_cluster_metadata(kafka, impl):
    """ensure_topic() reads the broker count from the cluster: on a cluster reporting 4 brokers it asks for 3 copies."""
    brokers, want_rf, want_isr = 4, 3, 2  # ensure_topic's default wishes (3, 2) both fit 4 brokers
    real = next(iter(kafka.admin.list_topics(timeout=10).brokers.values()))
    proxy = BigClusterProxy(real.host, real.port, real.id, brokers)
    proxy.hold_responses[CREATE_TOPICS] = ANSWER_HOLD_S
    topic = kafka.unique("big")
    kafka.created_topics.append(topic)
    did = (f"called ensure_topic(<a cluster whose metadata lists {brokers} brokers>, {topic!r}, partitions=2, "
           f"retention_ms={DAY_MS}) with the default wishes and recorded the CreateTopics request it sent (the "
           "grader's one real broker behind a proxy keeps one copy)")
    try:
        call(did, impl.ensure_topic, proxy.bootstrap, topic, 2, DAY_MS)
        answered = proxy.answered.get(CREATE_TOPICS, 0)
    finally:
        proxy.close()
    asked = [(rf, cfg) for name, rf, cfg in proxy.created if name == topic]
    if not asked:
        explain(did=did, saw="no CreateTopics request for the topic", expected=f"one, with {want_rf} replicas",
                seen_in="the proxy", nudge="did ensure_topic create the topic on the cluster it was given, and wait "
                "for the creation's result? An AdminClient dropped before its request went out sends nothing.")
    if not answered:
        explain(did=did + f" (the broker's answer held {ANSWER_HOLD_S} s on its way back)", seen_in="the proxy",
                saw="ensure_topic() returned before its client had received the broker's answer to the creation",
                expected="ensure_topic() to return once the broker has confirmed the creation",
                nudge="create_topics() returns a future per topic at once; only its result() says the topic "
                "was created (or why the broker refused).")
    rf, cfg = asked[0]
    if rf != want_rf or cfg.get("min.insync.replicas") != str(want_isr):
        explain(did=did, seen_in="the request your code sent",
                saw=f"replication factor {rf}, min.insync.replicas {cfg.get('min.insync.replicas')!r}",
                expected=f"replication factor {want_rf} and min.insync.replicas '{want_isr}': the default wishes, "
                f"which fit a cluster of {brokers} brokers",
                nudge="the same code runs on a laptop with one broker and in production with many: count the "
                "brokers the cluster's metadata lists, every time, instead of assuming a number.")


def test_topic_has_partitions_and_retention(kafka, impl):
    """ensure_topic() creates the topic with the asked partitions and retention.ms."""
    topic, retention = kafka.unique("shape"), 3 * DAY_MS + 4321  # not a round number of seconds or hours
    ensure(kafka, impl, topic, 5, retention)
    count, _, leaders = describe(kafka, topic, 5)
    if count != 5 or any(leader < 0 for leader in leaders.values()):
        explain(did="called ensure_topic(partitions=5) and described the topic once it returned",
                saw=f"{count} partitions, leaders {leaders}" if count else "no such topic",
                expected="5 partitions, each with a leader",
                nudge="create_topics() returns a future per topic: the topic exists once it has resolved.")
    entry = topic_config(kafka, topic)["retention.ms"]
    if entry.value != str(retention) or entry.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value:
        explain(did=f"called ensure_topic(retention_ms={retention}) and described the topic's configs",
                saw=f"retention.ms = {entry.value} ({'topic config' if entry.source == 1 else 'broker default'})",
                expected=f"retention.ms = {retention}, set on the topic",
                nudge="topic-level settings are passed when the topic is created, as its config, in the unit "
                "their name says.")


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
                "when what exists is not what you wanted; compare like with like (a config value is text).",
                seen_in="your function")
    count, _, _ = describe(kafka, topic, 4)
    retention = topic_config(kafka, topic)["retention.ms"].value
    if count != 4 or retention != str(DAY_MS):
        explain(did="called ensure_topic twice with the same arguments", saw=f"{count} partitions, "
                f"retention.ms={retention}", expected=f"4 partitions, retention.ms={DAY_MS}")


def test_conflicting_partitions_raise(kafka, impl, premade):
    """ensure_topic() on an existing topic with another partition count raises TopicConflict naming it."""
    check_conflict(kafka, impl, premade["partitions"], *CONFLICTS["partitions"])


def test_conflicting_retention_raises(kafka, impl, premade):
    """ensure_topic() on an existing topic with another retention.ms raises TopicConflict naming it."""
    check_conflict(kafka, impl, premade["retention"], *CONFLICTS["retention"])


def test_conflict_names_every_difference(kafka, impl, premade):
    """A TopicConflict names every setting that differs, with both values, when several do."""
    check_conflict(kafka, impl, premade["both"], *CONFLICTS["both"])


def check_conflict(kafka, impl, topic: str, have: tuple[int, int], asked: tuple[int, int]) -> None:
    differing = {name: (h, a) for name, h, a in zip(("partitions", "retention.ms"), have, asked, strict=True) if h != a}
    did = (f"created {topic} with {have[0]} partitions and retention.ms={have[1]}, then called "
           f"ensure_topic(partitions={asked[0]}, retention_ms={asked[1]})")
    try:
        impl.ensure_topic(kafka.bootstrap_servers, topic, asked[0], asked[1], wanted_rf=WANTED_RF,
                          wanted_min_isr=WANTED_MIN_ISR)
    except impl.TopicConflict as exc:
        lacking = conflict_message_problem(str(exc), topic, differing)
        if lacking:
            explain(did=did, saw=f"TopicConflict({str(exc)!r})", seen_in="your exception",
                    expected="a message naming " + " and ".join(f"{n!r} ({h} exists, {a} asked)"
                                                                 for n, (h, a) in differing.items()),
                    nudge=f"the message lacks {lacking}. The person reading this error at 3 a.m. needs to know "
                    "everything that differs, without running any tool.")
    except Exception as exc:
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="TopicConflict naming "
                f"{' and '.join(differing)}", nudge="'already exists' alone does not say whether the topic is usable.",
                seen_in="your function")
    else:
        explain(did=did, saw="it returned normally", expected=f"TopicConflict naming {' and '.join(differing)}",
                nudge="a service that silently runs on a topic with another shape than it asked for breaks its "
                "own assumptions (ordering, retention) without anyone noticing. Compare every setting the "
                "contract names.", seen_in="your function")
    count = kafka.partition_count(topic)
    retention = topic_config(kafka, topic)["retention.ms"].value
    if count != have[0] or retention != str(have[1]):
        explain(did=did, saw=f"the topic now has {count} partitions, retention.ms={retention}",
                expected=f"the existing topic untouched ({have[0]} partitions, retention.ms={have[1]})",
                nudge="changing a live topic is a decision for a person, not a side effect of start-up code.")


def test_key_partitions_match_the_broker(kafka, impl, premade):
    """key_partitions() reports the partition each key's record landed on, by the default partitioner."""
    check_probe_report(kafka, impl, premade["probe"], 7, set())


def test_key_partitions_raise_when_refused(kafka, impl, premade):
    """key_partitions() raises when the broker refuses the probe records."""
    topic = premade["refusing"]
    did = (f"called key_partitions(bootstrap, topic, <{len(KEYS)} keys>) on a topic whose max.message.bytes (16) "
           "refuses every record (MESSAGE_TOO_LARGE)")
    try:
        got = impl.key_partitions(kafka.bootstrap_servers, topic, KEYS)
    except NotImplementedError:
        explain(did=did, saw="NotImplementedError: the function is still the stub", expected="an exception "
                "saying the records were refused", seen_in="your function")
    except Exception:  # noqa: BLE001 - any exception is the contract's "raise"
        return
    explain(did=did, saw=f"it returned {got!r:.120}", expected="an exception: no record could be delivered",
            nudge="a refused record leaves the producer's queue with an error: flush() has nothing left to count, "
            "and only its delivery report says it failed.", seen_in="your function")


def test_adding_partitions_moves_keys(kafka, impl, premade):
    """add_partitions() grows a topic, and afterwards some keys land on other partitions."""
    topic = premade["grow"]
    seen: set = set()
    before = check_probe_report(kafka, impl, topic, 2, seen)
    real = next(iter(kafka.admin.list_topics(timeout=10).brokers.values()))
    proxy = BigClusterProxy(real.host, real.port, real.id, 1)  # the one real broker, its answers timed
    proxy.hold_responses[CREATE_PARTITIONS] = ANSWER_HOLD_S
    did = f"called add_partitions(bootstrap, {topic!r}, 5) on a 2-partition topic"
    try:
        call(did, impl.add_partitions, proxy.bootstrap, topic, 5)
        answered = proxy.answered.get(CREATE_PARTITIONS, 0)
    finally:
        proxy.close()
    if not answered:
        explain(did=did + f" (the broker's answer to the grow held {ANSWER_HOLD_S} s on its way back)",
                saw="add_partitions() returned before its client had received the broker's answer",
                expected="add_partitions() to return once the broker has confirmed the new partition count",
                seen_in="the proxy", nudge="create_partitions() returns a future per topic at once; only its "
                "result() says the broker has grown the topic (or why it refused).")
    count, _, leaders = describe(kafka, topic, 5)
    if count != 5 or any(leader < 0 for leader in leaders.values()):
        explain(did="called add_partitions(topic, 5) on a 2-partition topic and described it once it returned",
                saw=f"{count} partitions, leaders {leaders}", expected="5 partitions, each with a leader",
                nudge="AdminClient has a call that adds partitions: does it take the new total or how many to "
                "add? Its result is a future to wait on.")
    after = check_probe_report(kafka, impl, topic, 5, seen)
    moved = {k: (before[k], after[k]) for k in KEYS if before[k] != after[k]}
    if not moved or not any(p >= 2 for p in after.values()):
        explain(did=f"probed {len(KEYS)} keys before and after growing the topic from 2 to 5 partitions",
                saw=f"{len(moved)} keys changed partition; partitions used after: {sorted(set(after.values()))}",
                expected="the new partitions in use, and so some keys on another partition than before",
                nudge="a producer must learn the new partition count before its partitioner can use it.")


def test_add_partitions_is_idempotent_and_never_shrinks(kafka, impl, premade):
    """add_partitions() to the current size is a no-op, and to a smaller size raises TopicConflict."""
    topic = premade["shrink"]
    call(f"called add_partitions(bootstrap, {topic!r}, 4) on a 4-partition topic", impl.add_partitions,
         kafka.bootstrap_servers, topic, 4, nudge="the topic already has what was asked: nothing to do.")
    did = f"called add_partitions(bootstrap, {topic!r}, 2) on a 4-partition topic"
    try:
        impl.add_partitions(kafka.bootstrap_servers, topic, 2)
    except impl.TopicConflict:
        pass
    except Exception as exc:
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="TopicConflict",
                nudge="can Kafka ever remove a partition? Say so in your own exception.", seen_in="your function")
    else:
        explain(did=did, saw="it returned normally", expected="TopicConflict: a topic cannot shrink",
                nudge="what would happen to the records stored in the partitions that would go away?",
                seen_in="your function")
    if kafka.partition_count(topic) != 4:
        explain(did=did, saw=f"{kafka.partition_count(topic)} partitions", expected="still 4 partitions")
