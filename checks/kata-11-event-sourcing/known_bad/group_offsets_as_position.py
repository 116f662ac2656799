"""Known-bad for kata-11: lets a consumer group remember the position. The group's committed
offsets outlive the snapshot, so after the local state is lost nothing is replayed."""

import json
import os
import time

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
            # A transfer changes two accounts, which may live on two partitions. One record
            # per account puts each side into that account's own ordered history; both
            # carry the event id, so the pair stays traceable.
            send({"id": event["id"], "type": "transfer_out", "account": event["account"],
                  "amount": event["amount"], "counterparty": event["to"]})
            send({"id": event["id"], "type": "transfer_in", "account": event["to"],
                  "amount": event["amount"], "counterparty": event["account"]})
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
    elif kind == "transfer_out":
        balance -= amount
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
    # The mistake: one group per topic, starting at its committed offsets (earliest the first time).
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"ledger-{topic}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        positions = {p: max(committed[p], 0) for p in partitions}
        pending = {p for p in partitions if positions[p] < ends[p]}
        consumer.assign([TopicPartition(topic, p, positions[p]) for p in sorted(pending)])
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            apply(balances, json.loads(msg.value()))
            if on_event is not None:
                on_event(msg)
            positions[msg.partition()] = msg.offset() + 1
            if positions[msg.partition()] >= ends[msg.partition()]:
                pending.discard(msg.partition())
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items() if o > 0],
                        asynchronous=False)
    finally:
        consumer.close()
    save_snapshot(snapshot_path, balances, positions)
    return balances
