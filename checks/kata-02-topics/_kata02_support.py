"""Helpers for the kata-02 checks: what the broker says about a topic, and calling learner code."""

from __future__ import annotations

import re
import time
import zlib
from collections import defaultdict

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import ConfigResource, NewTopic

from grader.checklib import explain

DAY_MS = 24 * 3600 * 1000
WANTED_RF, WANTED_MIN_ISR = 3, 2
# Non-ASCII keys: the key is the text's UTF-8 bytes, and the returned dict is keyed by the text.
KEYS = [f"customer-{n:03d}" for n in range(36)] + ["zoë", "客户-7", "ünïcödé", "🙂"]


def create_topics(kit, specs: dict[str, tuple[int, dict]]) -> dict[str, str]:
    """Create every topic the checks start from in one request (one controller round instead of one
    per check), and wait until each has a leader for every partition: {label: topic name}."""
    names = {label: kit.unique(label) for label in specs}
    futures = kit.admin.create_topics([NewTopic(names[label], num_partitions=n, replication_factor=1, config=cfg)
                                       for label, (n, cfg) in specs.items()])
    for name in names.values():
        futures[name].result(timeout=30)
        kit.created_topics.append(name)
    for label, (n, _) in specs.items():
        kit.wait_for_leaders(names[label], n)
    return names


def broker_count(kafka) -> int:
    return len(kafka.admin.list_topics(timeout=10).brokers)


def describe(kafka, topic: str, partitions: int | None = None, grace: float = 3.0):
    """(partition count, {partition: replica count}, {partition: leader id}) as the broker reports it.

    The broker's metadata can trail the controller by a moment after a create or grow the
    controller already confirmed, so when `partitions` is given this waits (up to `grace`) until
    the topic shows that many partitions, each with a leader, and then reports what it shows.
    """
    deadline = time.monotonic() + grace
    while True:
        try:
            desc = kafka.admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=30)
            out = (len(desc.partitions), {p.id: len(p.replicas) for p in desc.partitions},
                   {p.id: (p.leader.id if p.leader is not None else -1) for p in desc.partitions})
        except KafkaException:
            out = (0, {}, {})
        ready = out[0] == partitions and all(leader >= 0 for leader in out[2].values())
        if partitions is None or ready or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def topic_config(kafka, topic: str) -> dict:
    resource = ConfigResource("topic", topic)
    return kafka.admin.describe_configs([resource])[resource].result(timeout=30)


def call(did: str, fn, *args, nudge: str = "read the exception: what did the broker (or your code) refuse?",
         **kwargs):
    """Call learner code; an unexpected exception becomes a teaching failure."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        explain(did=did, saw="NotImplementedError: the function is still the stub", expected="it to work",
                seen_in="your function")
    except Exception as exc:  # the learner's code failed: say so in their terms
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="it to return normally",
                nudge=nudge, seen_in="your function")


def ensure(kafka, impl, topic, partitions, retention_ms):
    kafka.created_topics.append(topic)  # the kit deletes it afterwards
    call(f"called ensure_topic(bootstrap, {topic!r}, partitions={partitions}, retention_ms={retention_ms}, "
         f"wanted_rf={WANTED_RF}, wanted_min_isr={WANTED_MIN_ISR})",
         impl.ensure_topic, kafka.bootstrap_servers, topic, partitions, retention_ms,
         wanted_rf=WANTED_RF, wanted_min_isr=WANTED_MIN_ISR,
         nudge="the grader's cluster may have fewer brokers than production. What does the error say the "
         "broker refused?")


def conflict_message_problem(text: str, topic: str, differing: dict) -> str | None:
    """What a TopicConflict message lacks: each differing setting's name, existing and asked value."""
    numbers = re.findall(r"\d+", text.replace(topic, "<topic>"))
    for name, (have, want) in differing.items():
        if name not in text:
            return f"the setting name {name!r}"
        if str(have) not in numbers or str(want) not in numbers:
            return f"both values of {name} (existing {have}, asked {want})"
    return None


def probes_on_broker(kafka, topic: str, skip: set) -> tuple[dict[str, set[int]], set]:
    """Partitions where each key's probe records are, and the values seen, ignoring records already
    seen (partition, offset)."""
    where, values = defaultdict(set), set()
    for r in kafka.read_all(topic, timeout=15):
        if (r.partition, r.offset) not in skip:
            where[r.key.decode("utf-8", "replace") if r.key is not None else None].add(r.partition)
            values.add(r.value)
            skip.add((r.partition, r.offset))
    return where, values


def check_probe_report(kafka, impl, topic: str, partitions: int, seen: set) -> dict[str, int]:
    did = f"called key_partitions(bootstrap, topic, <{len(KEYS)} keys>) on a {partitions}-partition topic"
    report = call(did, impl.key_partitions, kafka.bootstrap_servers, topic, KEYS)
    if not isinstance(report, dict) or set(report) != set(KEYS):
        missing = sorted(set(KEYS) - set(report or {}))
        explain(did=did, saw=f"it returned {type(report).__name__} with {len(report or {})} keys "
                f"(missing e.g. {missing[:3]}, unexpected e.g. {sorted(map(repr, set(report or {}) - set(KEYS)))[:3]})",
                expected="a dict with every key (the text given), mapped to the partition its record landed on",
                nudge="produce() returns before the record is sent. Where does the client tell you what became "
                "of a record, and is the key you read back decoded the way it was encoded?", seen_in="your function")
    actual, values = probes_on_broker(kafka, topic, seen)
    if values - {b"probe"}:
        explain(did=did + ", then read the topic back", saw=f"probe values {sorted(values, key=repr)[:3]}",
                expected="every probe's value to be b\"probe\"", nudge="the contract fixes the probe's value.")
    for key in KEYS:
        if actual.get(key) != {report[key]}:
            explain(did=did + ", then read the topic back",
                    saw=f"key {key!r} reported on partition {report[key]!r}, but its probe is on partition(s) "
                    f"{sorted(actual.get(key, set()))}",
                    expected="each key's reported partition to be where the broker stored its one record",
                    nudge="the partitioner runs in the producer, with the partition count the producer knows. "
                    "Report what the delivery report says, not a guess.")
    for key in KEYS:
        default = zlib.crc32(key.encode("utf-8")) % partitions
        if report[key] != default:
            explain(did=did + ", then compared each key's partition with the default partitioner's choice",
                    saw=f"key {key!r} landed on partition {report[key]}", expected=f"partition {default} (the "
                    f"default partitioner: CRC-32 of the key's bytes modulo the {partitions} partitions)",
                    nudge="the probe shows where the default partitioner puts keys, so it must use it: no "
                    "partitioner setting, no partition= of your own, and a producer that knows the topic's "
                    "current partition count (one kept from before the topic grew does not).")
    return report
