"""kata-23's scenarios: a topic of good and poison records, the learner's sink config registered on the
shared Connect worker, and what came out (the sink's file, the DLQ, the REST status, the stored config).

A scenario runs once per judge and is cached: every check that looks at it sees the same run, and
known-bad validation (one check per fixture) still runs it for real.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException

from grader.kit import explain
from grader.kit.connect import ConnectError, ConnectRest

ERR = "__connect.errors."
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
DATA_EXCEPTION = "org.apache.kafka.connect.errors.DataException"
SCHEMA = {"type": "struct", "optional": False, "fields": [
    {"field": "id", "type": "int32"}, {"field": "item", "type": "string"}, {"field": "qty", "type": "int32"}]}
ITEMS = ["apple", "pear", "plum", "kiwi", "fig", "lime", "date", "quince", "melon", "grape"]
POISON = {  # kind -> what a learner reads in a message
    "not_json": "a value that is not JSON at all (an HTML error page)",
    "no_schema": "plain JSON without the schema envelope",
    "null_field": "an envelope whose payload has null for a required field",
    "missing_field": "an envelope whose payload lacks a required field",
    "payload_not_object": "an envelope whose payload is a string, not the struct its schema says",
}
# Per partition, in order: G = a good record, P = a poison record; "|" splits the records produced before
# the connector runs from those produced while it runs (the last ones arrive at a running task).
LAYOUTS = {
    "single": ["GGPGPPPG|GPGPP"],  # poison in the middle, several in a row, two at the very end
    "spread": ["PGG|PG", "GPP|GG", "GG|PGP"],  # three partitions: first, middle and last records poison
}
_CACHE: dict[str, Observation] = {}


@dataclass
class Item:
    partition: int
    key: bytes | None
    value: bytes
    kind: str  # "good" or a POISON kind
    line: str = ""  # the line the file sink writes for a good record
    headers: list = field(default_factory=list)
    offset: int = -1

    @property
    def poison(self) -> bool:
        return self.kind != "good"

    @property
    def where(self) -> str:
        return f"partition {self.partition} offset {self.offset}"


@dataclass
class Observation:
    scenario: str
    topic: str
    dlq: str
    name: str
    out_file: Path
    items: list[Item]
    config: dict | None = None
    rejected: str | None = None  # Connect's message when it refused the config
    file_lines: list[str] | None = None  # None: no file
    dead: list = field(default_factory=list)  # DLQ records (grader.kit.Record)
    dlq_exists: bool = False
    status: dict = field(default_factory=dict)
    stored: dict = field(default_factory=dict)
    caught_up: bool = False
    during_sent: bool = False
    committed: dict = field(default_factory=dict)
    ends: dict = field(default_factory=dict)

    @property
    def good(self) -> list[Item]:
        return [i for i in self.items if not i.poison]

    @property
    def poison(self) -> list[Item]:
        return [i for i in self.items if i.poison]

    @property
    def did(self) -> str:
        parts = len({i.partition for i in self.items})
        return (f"registered sink_config({self.topic!r}, {str(self.out_file)!r}, {self.dlq!r}) as connector "
                f"{self.name!r} on a topic of {parts} partition(s) holding {len(self.good)} good records (JSON "
                f"with a schema envelope, string keys) and {len(self.poison)} poison ones "
                f"({', '.join(sorted({i.kind for i in self.poison}))})"
                + (", some produced while it ran" if self.during_sent else ", the rest held back: the task had failed"))

    def failed_trace(self) -> str | None:
        """The first line of a FAILED connector's or task's trace, None while everything runs."""
        for part in [self.status.get("connector", {}), *self.status.get("tasks", [])]:
            if part.get("state") == "FAILED":
                lines = (part.get("trace") or "").strip().splitlines()
                causes = [ln.strip() for ln in lines if ln.startswith("Caused by")]
                return lines[0] + (f" ({causes[-1]})" if causes else "") if lines else "FAILED"
        return None


def failure_nudge(trace: str) -> str:
    """Name the cause of a FAILED task from its own trace."""
    if "dead letter queue" in trace or "replicat" in trace.lower():
        return ("Connect creates the dead-letter topic itself when the task starts, with as many replicas as "
                "errors.deadletterqueue.topic.replication.factor says (3 unless you say otherwise). How many "
                "brokers does this test cluster have?")
    if "Tolerance exceeded" in trace:
        return ("with errors.tolerance=none (the default) the first record Connect cannot convert stops the task "
                "for good; which setting lets it skip (and dead-letter) the record and go on?")
    return "read the task's trace in the status: it names the setting or the record that stopped it."


def _good(rng: random.Random, partition: int, n: int) -> Item:
    ident, item, qty = rng.randint(1, 2**31 - 1), rng.choice(ITEMS), rng.randint(1, 500)
    value = json.dumps({"schema": SCHEMA, "payload": {"id": ident, "item": item, "qty": qty}}).encode()
    key = None if n == 3 else f"ord-{ident}".encode()
    return Item(partition, key, value, "good", line=f"Struct{{id={ident},item={item},qty={qty}}}")


def _poison(rng: random.Random, partition: int, kind: str) -> Item:
    nonce, ident = uuid.uuid4().hex[:8], rng.randint(1, 2**31 - 1)
    payload = {"id": ident, "item": f"bad-{nonce}", "qty": 1}
    value = {
        "not_json": f"<html><body>502 Bad Gateway {nonce}</body></html>".encode(),
        "no_schema": json.dumps(payload).encode(),
        "null_field": json.dumps({"schema": SCHEMA, "payload": {**payload, "qty": None}}).encode(),
        "missing_field": json.dumps({"schema": SCHEMA, "payload": {"id": ident, "qty": 2, "note": nonce}}).encode(),
        "payload_not_object": json.dumps({"schema": SCHEMA, "payload": f"id={ident} {nonce}"}).encode(),
    }[kind]
    return Item(partition, None if kind == "no_schema" else f"bad-{nonce}".encode(), value, kind)


def build(scenario: str) -> tuple[list[Item], list[Item]]:
    """(records produced before the connector starts, records produced while it runs)."""
    rng = random.Random(uuid.uuid4().int)
    kinds = list(POISON)
    rng.shuffle(kinds)
    before, during, n, pills = [], [], 0, 0
    for partition, layout in enumerate(LAYOUTS[scenario]):
        head, tail = layout.split("|")
        for target, part in ((before, head), (during, tail)):
            for slot in part:
                n += 1
                pills += slot == "P"  # every kind of poison in every scenario, in a random order
                item = _good(rng, partition, n) if slot == "G" else _poison(rng, partition, kinds[pills % len(kinds)])
                item.headers = [("trace-id", f"t-{uuid.uuid4().hex[:12]}".encode())]
                target.append(item)
    return before, during


def produce(kafka, topic: str, items: list[Item]) -> None:
    producer = kafka.producer()

    def delivered(item: Item):
        def report(err, msg):
            if err is None:
                item.offset = msg.offset()
        return report

    for item in items:
        producer.produce(topic, key=item.key, value=item.value, partition=item.partition, headers=item.headers,
                         on_delivery=delivered(item))
    if producer.flush(30) or any(i.offset < 0 for i in items):
        raise RuntimeError(f"the check could not write its records to {topic}")


def _config_or_explain(impl, topic: str, out_file: Path, dlq: str) -> dict:
    did = f"called sink_config({topic!r}, {str(out_file)!r}, {dlq!r})"
    try:
        config = impl.sink_config(topic, str(out_file), dlq)
    except NotImplementedError as exc:
        explain(did=did, saw=f"NotImplementedError: {exc}", expected="the connector's configuration (a dict)",
                nudge="sink_config() is still the stub: start from the README's contract.",
                seen_in="your function")
    if not isinstance(config, dict) or not config:
        explain(did=did, saw=f"it returned {config!r:.200}", expected="a non-empty dict of settings",
                seen_in="your function's return value", nudge="Connect's REST API takes the config as a JSON object.")
    odd = {k: v for k, v in config.items() if not isinstance(k, str) or not isinstance(v, str)}
    if odd:
        explain(did=did, saw=f"settings that are not strings: {odd}", expected="every key and value a str",
                seen_in="your function's return value",
                nudge="Connect's REST API takes every setting as a string (\"1\", \"true\").")
    return config


def observe(kafka, impl, connect_url: str, tmp_path: Path, scenario: str) -> Observation:
    """Run the scenario once per judge (cached), for real, against the shared Connect worker."""
    if scenario in _CACHE:
        return _CACHE[scenario]
    before, during = build(scenario)
    parts = len(LAYOUTS[scenario])
    topic = kafka.create_topic(partitions=parts)
    obs = Observation(scenario, topic, kafka.unique("dlq"), kafka.unique("sink"), tmp_path / f"{scenario}.txt",
                      before + during)
    obs.config = _config_or_explain(impl, topic, obs.out_file, obs.dlq)
    produce(kafka, topic, before)
    rest = ConnectRest(connect_url)
    try:
        try:
            rest.put_config(obs.name, obs.config)
        except ConnectError as exc:
            obs.rejected = exc.message
            _CACHE[scenario] = obs
            return obs
        _wait(rest, obs, lambda: bool(obs.status.get("tasks")), 30)
        if not obs.failed_trace():
            produce(kafka, topic, during)
            obs.during_sent = True
        obs.ends = {p: 1 + max(i.offset for i in obs.items if i.partition == p and i.offset >= 0)
                    for p in range(parts)}
        group = f"connect-{obs.name}"

        def caught_up() -> bool:
            try:
                obs.committed = kafka.committed(group, topic)
            except KafkaException:  # a slow coordinator on a busy machine: ask again
                return False
            return all(obs.committed.get(p, -1) >= end for p, end in obs.ends.items())

        obs.caught_up = _wait(rest, obs, caught_up, 40)
        obs.dlq_exists = kafka.partition_count(obs.dlq) > 0
        if obs.dlq_exists:
            kafka.created_topics.append(obs.dlq)  # deleted with this check's topics
            # The DLQ producer may still be sending when the offsets are committed; a failed task sends no more.
            deadline = time.monotonic() + (0 if obs.failed_trace() else 3)
            obs.dead = kafka.read_all(obs.dlq, timeout=5)
            while len(obs.dead) < len(obs.poison) and time.monotonic() < deadline:
                obs.dead = kafka.read_all(obs.dlq, timeout=5)
                time.sleep(0.2)
        obs.file_lines = obs.out_file.read_text().splitlines() if obs.out_file.exists() else None
        obs.status = rest.status(obs.name)
        obs.stored = rest.config(obs.name)
    finally:
        rest.delete(obs.name)
    _CACHE[scenario] = obs
    return obs


def _wait(rest: ConnectRest, obs: Observation, condition, timeout: float) -> bool:
    """Poll the condition and the connector's status until it holds, a part FAILED, or the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            obs.status = rest.status(obs.name)
        except ConnectError as exc:
            if exc.status != 404:
                raise
        if obs.failed_trace():
            return False
        if condition():
            return True
        time.sleep(0.3)
    return False


def headers_of(record) -> tuple[list, dict[str, str]]:
    """(the record's own headers, in order; Connect's __connect.errors.* headers as text)."""
    own = [(k, v) for k, v in record.headers or [] if not k.startswith(ERR)]
    errs = {k[len(ERR):]: (v or b"").decode("utf-8", "replace") for k, v in record.headers or [] if k.startswith(ERR)}
    return own, errs


def require_running_config(obs: Observation) -> None:
    """Fail with Connect's own words when it refused the learner's config."""
    if obs.rejected is not None:
        explain(did=obs.did.split(" on a topic")[0], saw=f"Connect refused it: {obs.rejected}",
                expected="Connect to accept the configuration and run it",
                nudge="Connect's message names the setting it could not use.", seen_in="Connect's REST API")


def dlq_like(kafka) -> tuple[str, list[dict]]:
    """A topic of dead-record-shaped records the check writes itself, and the summaries they must give."""
    rng = random.Random(uuid.uuid4().int)
    origin = kafka.unique("orders")
    cases = [
        (b"ord-" + str(rng.randint(1, 999)).encode(), b"\xff\xfe<not json>", origin, rng.randint(0, 11),
         rng.randint(2**32, 2**40), "VALUE_CONVERTER", JSON_CONVERTER, DATA_EXCEPTION,
         f"Converting byte[] to Kafka Connect data failed: Unrecognized token '\u00fc{rng.randint(1, 99)}'"),
        (None, None, kafka.unique("payments"), rng.randint(0, 3), rng.randint(0, 99), "TASK_PUT",
         "org.apache.kafka.connect.file.FileStreamSinkTask", "org.apache.kafka.connect.errors.ConnectException",
         f"disk full {rng.randint(1, 99)}"),
        (b"k", b'{"x": 1}', None, None, None, None, None, None, None),  # a record without context headers
        (b"k2", b"v2", origin, rng.randint(0, 5), rng.randint(0, 9), "TRANSFORMATION",
         "org.apache.kafka.connect.transforms.Cast$Value", "org.apache.kafka.connect.errors.DataException",
         "Unknown type"),
    ]
    topic = kafka.create_topic(partitions=1)
    producer, want = kafka.producer(), []
    names = ["topic", "partition", "offset", "stage", "class_name", "exception", "message"]
    header_names = ["topic", "partition", "offset", "stage", "class.name", "exception.class.name",
                    "exception.message"]
    for key, value, *ctx in cases:
        headers = [("trace-id", b"t-1")] + [(ERR + h, str(v).encode()) for h, v in zip(header_names, ctx, strict=True)
                                            if v is not None]
        producer.produce(topic, key=key, value=value, headers=headers)
        want.append({"key": key, "value": value, **dict(zip(names, ctx, strict=True))})
    producer.flush(30)
    return topic, want
