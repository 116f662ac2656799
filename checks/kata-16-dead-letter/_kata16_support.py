"""Helpers for kata-16's checks: records with known coordinates, the consumer in a thread or a process."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from grader.kit import ChildRun, explain

# Short sessions: after a SIGKILL the dead member leaves the group within seconds.
CONSUMER_CONFIG = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}
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

    @property
    def where(self) -> str:
        return f"partition {self.partition} offset {self.offset}"


def order(order_id: str, amount, partition: int) -> tuple[Sent, int]:
    return Sent(order_id, order_id.encode(), json.dumps({"order_id": order_id, "amount": amount}).encode()), partition


def write(kafka, topic: str, items: list[tuple[Sent, int]]) -> list[Sent]:
    """Produce in list order to the given partitions; fill in each record's offset."""
    producer = kafka.producer()
    for sent, partition in items:
        def on_delivery(err, msg, sent=sent):
            if err is None:
                sent.partition, sent.offset = msg.partition(), msg.offset()
        producer.produce(topic, key=sent.key, value=sent.value, partition=partition, on_delivery=on_delivery)
        producer.flush(30)  # one at a time: offsets in list order
    records = [s for s, _ in items]
    assert all(s.offset >= 0 for s in records), "the check could not write its records"
    return records


def big_not_json(name: str) -> Sent:
    """An HTML error page that ended up in the topic: not JSON, and too big for a refusing DLQ."""
    return Sent(name, name.encode(), f"<html><body>502 Bad Gateway {os.urandom(400).hex()}</body></html>".encode(),
                poison="not JSON")


def headers_of(record) -> dict[str, str]:
    return {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in (record.headers or [])}


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
    """The learner's consumer in a thread of the check, with a process() that raises for some orders."""

    def __init__(self, impl, kafka, topic: str, group: str, dlq: str, failing: dict[str, Exception]):
        self.processed: list[dict] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()

        def process(order_):
            order_id = order_.get("order_id") if isinstance(order_, dict) else None
            if order_id in failing:
                raise failing[order_id]
            self.processed.append(order_)

        def run():
            try:
                impl.consume_with_dead_letters(kafka.bootstrap_servers, topic, group, dlq, dict(CONSUMER_CONFIG),
                                               process, self._stop.is_set)
            except BaseException as exc:  # reported by the check, in the learner's terms
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True, name="kata16-consumer")
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, did: str) -> None:
        self._stop.set()
        self.thread.join(30)
        if self.thread.is_alive():
            explain(did=did + ", then made should_stop() return True", saw="it was still running 30s later",
                    expected="consume_with_dead_letters to return soon after",
                    nudge="check should_stop() in your poll loop, at least once a second.")

    def processed_ids(self) -> list[str]:
        return [o.get("order_id") for o in self.processed]


def start_child(impl_path, tmp_path, kafka, topic, group, dlq, crash_after=None) -> ChildRun:
    return ChildRun(impl_path, "consume_with_dead_letters",
                    {"bootstrap_servers": kafka.bootstrap_servers, "topic": topic, "group_id": group,
                     "dlq_topic": dlq, "consumer_config": dict(CONSUMER_CONFIG)},
                    workdir=tmp_path, crash_after=crash_after, name="dlq-consumer")


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

