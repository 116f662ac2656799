"""Test data and the reference fold for kata-11's checks (not shown to learners)."""

from __future__ import annotations

import json
import random

ACCOUNTS = ["acc-ana", "acc-ben", "acc-cai", "acc-dov", "acc-eve", "acc-fay", "acc-gil"]


def make_events(seed: int, count: int, first_id: int = 1) -> list[dict]:
    """Deposits, withdrawals (many close to the balance, so order decides) and transfers."""
    rng = random.Random(seed)
    events = []
    for n in range(count):
        account = rng.choice(ACCOUNTS)
        kind = rng.choices(["deposit", "withdrawal", "transfer"], weights=[4, 4, 3])[0]
        event = {"id": f"e{first_id + n:04d}", "type": kind, "account": account,
                 "amount": rng.choice([10, 20, 30, 40, 50, 70, 90])}
        if kind == "transfer":
            event["to"] = rng.choice([a for a in ACCOUNTS if a != account])
        events.append(event)
    return events


def first_batch(count: int) -> list[dict]:
    """The log every read-only check replays: the rules' edge cases first (every balance starts at 0), then noise.

    A withdrawal of exactly the balance (allowed), a transfer from an empty account (into the red: transfers
    are never declined), and an account whose only event is a declined withdrawal (its balance, 0, is still
    returned). With 5 partitions, these 8 accounts leave partition 3 empty under both librdkafka's default
    partitioner (CRC32) and Java's (murmur2): the snapshot must still name it.
    """
    edge = [{"id": "e0001", "type": "deposit", "account": "acc-ana", "amount": 50},
            {"id": "e0002", "type": "withdrawal", "account": "acc-ana", "amount": 50},
            {"id": "e0003", "type": "transfer", "account": "acc-ben", "to": "acc-cai", "amount": 40},
            {"id": "e0004", "type": "withdrawal", "account": "acc-zed", "amount": 30}]
    return edge + make_events(seed=11, count=count - len(edge), first_id=len(edge) + 1)


def fold(events: list[dict]) -> dict[str, int]:
    """The balances the README's rules give, applying events in list order."""
    balances: dict[str, int] = {}
    for e in events:
        _apply_one(balances, e)
    return balances


def declined(events: list[dict]) -> int:
    """How many withdrawals the rules decline (the data must exercise the order-sensitive rule)."""
    balances: dict[str, int] = {}
    return sum(_apply_one(balances, e) for e in events)


def _apply_one(balances: dict[str, int], e: dict) -> int:
    """Apply one event; return 1 if it was a declined withdrawal."""
    account, amount = e["account"], e["amount"]
    balances.setdefault(account, 0)
    if e["type"] == "deposit":
        balances[account] += amount
    elif e["type"] == "withdrawal":
        if balances[account] < amount:
            return 1
        balances[account] -= amount
    else:
        balances.setdefault(e["to"], 0)
        balances[account] -= amount
        balances[e["to"]] += amount
    return 0


def histories(events: list[dict]) -> dict[str, list[str]]:
    """Per account, the ids of the events that change it, in order (a transfer counts for both sides)."""
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["account"], []).append(e["id"])
        if e["type"] == "transfer":
            out.setdefault(e["to"], []).append(e["id"])
    return out


def parse(value: bytes | None) -> dict | None:
    try:
        obj = json.loads(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def diff(got: dict, want: dict, limit: int = 4) -> str:
    """A short description of how two balance dicts differ."""
    if not isinstance(got, dict):
        return f"a {type(got).__name__}, not a dict"
    parts = []
    for acc in sorted(set(got) | set(want)):
        if got.get(acc) != want.get(acc):
            parts.append(f"{acc}: got {got.get(acc, 'nothing')}, expected {want.get(acc, 'no entry')}")
    if not parts:
        return "the same balances"
    more = f" (and {len(parts) - limit} more)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more
