"""Helpers for kata-16's checks: records with known coordinates, the consumer in a thread or a process."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from grader.kit import ChildRun, explain

# Short sessions: after a SIGKILL the dead member leaves the group within seconds.
CONSUMER_CONFIG = {"session.timeout.ms": 1500, "heartbeat.interval.ms": 300}
# The longest gap allowed between two should_stop() calls ("at least once a second", with slack for a
# DLQ write, a commit and a loaded machine), and how long a correct consumer may take to return.
STOP_GAP_S = 2.0
RETURN_S = 5.0


def consumer_config(kafka) -> dict:
    """CONSUMER_CONFIG plus a client.id the check can see among the group's members."""
    return {**CONSUMER_CONFIG, "client.id": kafka.unique("dlq-client")}


def group_members(kafka, group: str) -> tuple[str, list[str]]:
    """(the group's state, the client ids of its members), as the group coordinator knows them."""
    desc = kafka.admin.describe_consumer_groups([group])[group].result(timeout=10)
    return str(getattr(desc.state, "name", desc.state)), [m.client_id for m in desc.members]
HEADERS = ("dlq.original.topic", "dlq.original.partition", "dlq.original.offset", "dlq.error.class",
           "dlq.error.message")
# The DLQ topic's max.message.bytes while it must refuse writes: the poison pill of that check is
# far larger (random hex), the broker's own transaction markers (about 80 bytes) still fit.
REFUSING_MAX_MESSAGE_BYTES = "200"
DEFAULT_MAX_MESSAGE_BYTES = "1048588"


@dataclass
class Sent:
    """A record the check wrote, with the coordinates the broker gave it."""
    name: str          # what the check calls it: an order id, or the kind of poison pill
    key: bytes
    value: bytes
    partition: int = -1
    offset: int = -1
    poison: str = ""   # "" for a good order, else why it must end up in the DLQ
    headers: list = field(default_factory=list)  # the record's own headers, (name, bytes)

    @property
    def where(self) -> str:
        return f"partition {self.partition} offset {self.offset}"


def trace(n: int) -> list[tuple[str, bytes]]:
    """The headers a real producer would set: a trace id, a repeated name, a non-ASCII value."""
    return [("trace-id", f"t-{n:04d}".encode()), ("hop", b"gateway"), ("hop", "caf\u00e9-api".encode())]


def order(order_id: str, amount, partition: int) -> tuple[Sent, int]:
    return Sent(order_id, order_id.encode(), json.dumps({"order_id": order_id, "amount": amount}).encode(),
                headers=trace(int(order_id.split("-")[-1]) if order_id[-1].isdigit() else 0)), partition


def pill(name: str, key: bytes | None, value: bytes | None, poison: str, n: int) -> Sent:
    return Sent(name, key, value, poison=poison, headers=trace(n))


def write(kafka, topic: str, items: list[tuple[Sent, int]]) -> list[Sent]:
    """Produce in list order to the given partitions; fill in each record's offset."""
    producer = kafka.producer()
    for sent, partition in items:
        def on_delivery(err, msg, sent=sent):
            if err is None:
                sent.partition, sent.offset = msg.partition(), msg.offset()
        producer.produce(topic, key=sent.key, value=sent.value, partition=partition, headers=sent.headers,
                         on_delivery=on_delivery)
        producer.flush(30)  # one at a time: offsets in list order
    records = [s for s, _ in items]
    assert all(s.offset >= 0 for s in records), "the check could not write its records"
    return records


def big_not_json(name: str) -> Sent:
    """An HTML error page that ended up in the topic: not JSON, and too big for a refusing DLQ."""
    return Sent(name, name.encode(), f"<html><body>502 Bad Gateway {os.urandom(400).hex()}</body></html>".encode(),
                poison="not JSON", headers=trace(502))


def split_headers(record) -> tuple[list, dict[str, list[str]]]:
    """(the record's headers that are not dlq.*, in order; each dlq.* header name -> its values as text)."""
    own, dlq = [], {}
    for k, v in record.headers or []:
        if k.startswith("dlq."):
            dlq.setdefault(k, []).append(v.decode("utf-8", "replace") if isinstance(v, bytes) else repr(v))
        else:
            own.append((k, v))
    return own, dlq


def hwm_total(kafka, topic: str) -> int:
    consumer = kafka.consumer()
    try:
        return sum(kafka.high_watermark(consumer, topic, p) for p in range(kafka.partition_count(topic)))
    finally:
        consumer.close()
        kafka._clients.remove(consumer)


def set_max_message_bytes(kafka, topic: str, value: str) -> None:
    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("max.message.bytes", value, incremental_operation=AlterConfigOpType.SET)])
    kafka.admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        current = ConfigResource("topic", topic)
        if kafka.admin.describe_configs([current])[current].result(timeout=10)["max.message.bytes"].value == value:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"max.message.bytes of {topic} never became {value}")
        time.sleep(0.1)


def committed_offset(kafka, group: str, topic: str, partition: int = 0) -> int:
    return kafka.committed(group, topic).get(partition, -1)


def call_desc(topic: str, dlq: str) -> str:
    return f"ran consume_with_dead_letters(bootstrap, {topic!r}, group, {dlq!r}, consumer_config, process, should_stop)"


class InThread:
    """The learner's consumer in a thread of the check, with a process() that raises for some orders.

    should_stop() records when it is called, so the check can see how often the consumer looks."""

    def __init__(self, impl, kafka, topic: str, group: str, dlq: str, failing: dict[str, Exception]):
        self.processed: list = []
        self.error: BaseException | None = None
        self.config = consumer_config(kafka)
        self.stop_calls: list[float] = []
        self._stop = threading.Event()

        def process(order_):
            order_id = order_.get("order_id") if isinstance(order_, dict) else None
            if order_id in failing:
                raise failing[order_id]
            self.processed.append(order_)

        def should_stop() -> bool:
            self.stop_calls.append(time.monotonic())
            return self._stop.is_set()

        def run():
            try:
                impl.consume_with_dead_letters(kafka.bootstrap_servers, topic, group, dlq, dict(self.config),
                                               process, should_stop)
            except BaseException as exc:  # reported by the check, in the learner's terms
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True, name="kata16-consumer")
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def idle_stop_gap(self, limit: float = STOP_GAP_S) -> float:
        """With the consumer idle, wait for its next should_stop() call (or until `limit` + 0.5 s have passed
        since its last one); return the gap between those two calls (or since the last one)."""
        seen = len(self.stop_calls)
        last = self.stop_calls[-1] if seen else time.monotonic()
        while len(self.stop_calls) == seen and time.monotonic() - last < limit + 0.5 and self.alive:
            time.sleep(0.02)
        return (self.stop_calls[seen] if len(self.stop_calls) > seen else time.monotonic()) - last

    def stop(self, did: str) -> float:
        """Make should_stop() return True; return how long the function took to return."""
        self._stop.set()
        asked = time.monotonic()
        self.thread.join(30)
        if self.thread.is_alive():
            explain(did=did + ", then made should_stop() return True", saw="it was still running 30s later",
                    expected="consume_with_dead_letters to return soon after", seen_in="the check's thread",
                    nudge="check should_stop() in your poll loop, at least once a second.")
        return time.monotonic() - asked

    def processed_ids(self) -> list:
        return [o.get("order_id") if isinstance(o, dict) else repr(o) for o in self.processed]


def start_child(impl_path, tmp_path, kafka, topic, group, dlq, crash_after=None, hold_at=None) -> ChildRun:
    return ChildRun(impl_path, "consume_with_dead_letters",
                    {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic, "group_id": group,
                     "dlq_topic": dlq, "consumer_config": dict(CONSUMER_CONFIG)},
                    workdir=tmp_path, crash_after=crash_after, hold_at=hold_at, name="dlq-consumer")


def child_processed(run: ChildRun) -> list[str]:
    out = []
    for rec in run.records():
        value = rec.get("value")
        out.append(value.get("order_id") if isinstance(value, dict) else repr(value))
    return out


def explain_child_death(run: ChildRun, did: str) -> None:
    err = run.error()
    if err and err["type"] == "NotImplementedError":
        explain(did=did, saw="NotImplementedError: the consumer is still the stub", expected="it to consume")
    if err:
        explain(did=did, saw=f"it raised {err['type']}: {err['message']}\n{err['traceback'][-1200:]}",
                expected="it to keep consuming until should_stop() returns True",
                nudge="a record that cannot be processed belongs in the DLQ, not in a crash.")
    explain(did=did, saw=f"it stopped on its own (exit code {run.proc.returncode}) while should_stop() was False. "
            f"Output:\n{run.output()}", expected="it to keep consuming until should_stop() returns True")


def wait_child(run: ChildRun, condition, timeout: float, did: str, what: str) -> None:
    """Wait for condition(); explain if the consumer dies first or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if run.proc.poll() is not None:
            explain_child_death(run, did)
        time.sleep(0.2)
    explain(did=did, saw=f"after {timeout:.0f}s, still waiting for {what}", expected=what,
            nudge="does your consumer keep going past records it cannot process?")


def settle_dlq(kafka, dlq: str, count: int, timeout: float = 5.0) -> None:
    """Once the consumer has processed the records after the poison pills, their DLQ copies are due
    (they were confirmed before those records were handled); allow a moment, then let the check judge."""
    deadline = time.monotonic() + timeout
    while hwm_total(kafka, dlq) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def stop_child(run: ChildRun, did: str) -> None:
    run.stop()
    if run.wait(timeout=30) is None:
        run.kill()
        explain(did=did + ", then made should_stop() return True", saw="it was still running 30s later",
                expected="consume_with_dead_letters to return soon after",
                nudge="check should_stop() in your poll loop, at least once a second.")
    if run.proc.returncode != 0:
        explain_child_death(run, did)

