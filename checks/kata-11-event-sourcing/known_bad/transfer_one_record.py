"""Known-bad for kata-11: a transfer is one record keyed by the sender; the receiver's side lives on
the sender's partition."""

import json
import os
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def append_events(bootstrap_servers: str, topic: str, events: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    def send(record: dict) -> None:
        # The key is the account the record changes: one account = one partition = one
        # ordered history, which is what a fold over that account needs.
        producer.produce(topic, key=record["account"].encode("utf-8"),
                         value=json.dumps(record).encode("utf-8"), on_delivery=on_delivery)
        producer.poll(0)

    for event in events:
        if event["type"] == "transfer":
            # The mistake: one record, on the sender's partition, also credits the receiver.
            send({"id": event["id"], "type": "transfer", "account": event["account"],
                  "amount": event["amount"], "to": event["to"]})
        else:
            send({"id": event["id"], "type": event["type"], "account": event["account"],
                  "amount": event["amount"]})

    remaining = producer.flush(30)
    if remaining or failures:
        raise KafkaException(f"{remaining} records undelivered, {len(failures)} failed: {failures[:3]}")


def apply(balances: dict[str, int], record: dict) -> None:
    account, amount, kind = record["account"], record["amount"], record["type"]
    balance = balances.get(account, 0)
    if kind in ("deposit", "transfer_in"):
        balance += amount
    elif kind == "transfer":
        balance -= amount
        balances[record["to"]] = balances.get(record["to"], 0) + amount
    elif kind == "withdrawal" and balance >= amount:
        # Depends on the balance *at this point* of the account's history: the reason
        # its records must be applied in order.
        balance -= amount
    balances[account] = balance


def load_snapshot(path: str) -> dict:
    if not os.path.exists(path):
        # No local state: the log is the source of truth, so start over from offset 0.
        return {"balances": {}, "offsets": {}}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def save_snapshot(path: str, balances: dict[str, int], offsets: dict[int, int]) -> None:
    # Write-then-rename: a crash mid-write leaves the old snapshot, never half a file.
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"balances": balances, "offsets": {str(p): o for p, o in offsets.items()}}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def catch_up(bootstrap_servers: str, topic: str, snapshot_path: str, on_event=None) -> dict[str, int]:
    snapshot = load_snapshot(snapshot_path)
    balances = dict(snapshot["balances"])
    # A throwaway group id: librdkafka needs one, but nothing is ever committed under it.
    # Positions live in the snapshot, next to the state they describe.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"ledger-replay-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.auto.offset.store": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        partitions = sorted(metadata.partitions)
        # "Now" is fixed when we start: events appended meanwhile are for the next call.
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        # The snapshot holds the *next* offset to read, so it is used as-is.
        positions = {p: int(snapshot["offsets"].get(str(p), 0)) for p in partitions}
        pending = {p for p in partitions if positions[p] < ends[p]}
        # assign() (not subscribe()) with explicit offsets: no group, no auto.offset.reset,
        # no rebalance; we read exactly the records between the snapshot and "now".
        consumer.assign([TopicPartition(topic, p, positions[p]) for p in sorted(pending)])
        deadline = time.monotonic() + 60
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay stalled; partitions still behind: {sorted(pending)}")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            apply(balances, json.loads(msg.value()))
            if on_event is not None:
                on_event(msg)
            positions[msg.partition()] = msg.offset() + 1  # next to read, not last read
            if positions[msg.partition()] >= ends[msg.partition()]:
                pending.discard(msg.partition())
    finally:
        consumer.close()
    save_snapshot(snapshot_path, balances, positions)
    return balances
