"""kata-11 reference solution: per-account records, replay with assign() up to the high
watermarks, and a snapshot that stores balances with the next offset of every partition."""

import json
import os
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def records_of(event: dict) -> list[dict]:
    """The records of one event: one per account it changes."""
    if event["type"] == "transfer":
        # A transfer changes two accounts, which may live on two partitions. One record
        # per account puts each side into that account's own ordered history; both
        # carry the event id, so the pair stays traceable.
        return [{"id": event["id"], "type": "transfer_out", "account": event["account"],
                 "amount": event["amount"], "counterparty": event["to"]},
                {"id": event["id"], "type": "transfer_in", "account": event["to"],
                 "amount": event["amount"], "counterparty": event["account"]}]
    return [{"id": event["id"], "type": event["type"], "account": event["account"], "amount": event["amount"]}]


def append_events(bootstrap_servers: str, topic: str, events: list[dict]) -> None:
    # Idempotence: a retried batch can neither be duplicated nor overtake the next one, so
    # each account's records stay in list order even when the network hiccups.
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    for event in events:
        for record in records_of(event):
            # The key is the account the record changes: one account = one partition = one
            # ordered history, which is what a fold over that account needs.
            producer.produce(topic, key=record["account"].encode("utf-8"),
                             value=json.dumps(record).encode("utf-8"), on_delivery=on_delivery)

    # flush() serves the delivery callbacks and returns how many records are still queued;
    # a record the broker refused is not queued any more: only its callback tells.
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
    # Write-then-rename: a crash or a full disk mid-write leaves the old snapshot whole,
    # never half a file; os.replace swaps the new one in in a single step. (To survive a
    # power cut as well, fsync the file before the rename.)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"balances": balances, "offsets": {str(p): o for p, o in offsets.items()}}, fh)
    os.replace(tmp, path)


def partitions_of(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        raise KafkaException(metadata.error)  # an unknown topic is a mistake, not an empty history
    return sorted(metadata.partitions)


def catch_up(bootstrap_servers: str, topic: str, snapshot_path: str, on_event=None) -> dict[str, int]:
    snapshot = load_snapshot(snapshot_path)
    balances = snapshot["balances"]
    # A throwaway group id: librdkafka needs one, but nothing ever reads what it might
    # commit. Positions live in the snapshot, next to the state they describe.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"ledger-replay-{uuid.uuid4()}"})
    try:
        partitions = partitions_of(consumer, topic)
        # "Now" is fixed when we start: events appended meanwhile are for the next call.
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        # The snapshot holds the *next* offset to read, so it is used as-is.
        positions = {p: int(snapshot["offsets"].get(str(p), 0)) for p in partitions}
        pending = {p for p in partitions if positions[p] < ends[p]}
        # assign() (not subscribe()) with explicit offsets: no group, no auto.offset.reset,
        # no rebalance; we read exactly the records between the snapshot and "now".
        consumer.assign([TopicPartition(topic, p, positions[p]) for p in sorted(pending)])
        while pending:
            for msg in consumer.consume(1, timeout=0.5):  # a list: empty when nothing came in time
                if msg.error():
                    raise KafkaException(msg.error())
                if msg.partition() not in pending:
                    continue  # appended after we started, past "now": for the next call
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
