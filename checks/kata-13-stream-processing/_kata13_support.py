"""Test data and reference results for kata-13's checks (not shown to learners)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

from grader.kit import explain

WINDOW_MS, GRACE_MS = 60_000, 10_000
# Event times far from today (2017-07-14), aligned to the minute: a processor that uses the
# wall clock cannot get the windows right by accident.
BASE_MS = 25_000_000 * WINDOW_MS


def at(seconds: float) -> int:
    return BASE_MS + round(seconds * 1000)


# (page, seconds after BASE): in order, or out of order but within the grace period.
ON_TIME = [("page-a", 5), ("page-b", 12), ("page-a", 30), ("page-a", 59.999), ("page-b", 61),
           ("page-a", 55),        # out of order; stream time 61 < 60 + 10: window 0 is still open
           ("page-b", 68), ("page-a", 69.999), ("page-c", 125), ("page-a", 121),
           ("page-b", 118),       # out of order; stream time 125 < 120 + 10
           ("page-c", 129.999), ("page-a", 150), ("page-b", 185),
           ("page-c", 179),       # out of order; stream time 185 < 180 + 10
           ("page-a", 240), ("page-b", 245), ("page-a", 299), ("page-c", 301)]

# Some events arrive after their window closed.
WITH_LATE = [("page-a", 5), ("page-a", 20), ("page-b", 30),
             ("page-a", 75),      # stream time 75 >= 60 + 10: window 0 closes
             ("page-a", 58),      # late
             ("page-b", 50),      # late
             ("page-c", 10),      # late (its window never had a counted event)
             ("page-b", 80),
             ("page-a", 130),     # stream time 130 == 120 + 10: window 1 closes exactly now
             ("page-b", 119.999),  # late, at the closing instant
             ("page-a", 125),
             ("page-b", 200),     # stream time 200 >= 180 + 10: window 2 closes
             ("page-a", 179),     # late
             ("page-b", 195), ("page-c", 239)]


def reference_windows(events: list[tuple[str, float]]) -> tuple[Counter, int]:
    """(Counter of (key, start, end, count) results, number of late events) per the README's rules."""
    counts: dict[tuple[str, int], int] = {}
    stream_time = None
    late = 0
    for key, seconds in events:
        ts = at(seconds)
        start = ts - ts % WINDOW_MS
        stream_time = ts if stream_time is None else max(stream_time, ts)
        if stream_time >= start + WINDOW_MS + GRACE_MS:
            late += 1
            continue
        counts[(key, start)] = counts.get((key, start), 0) + 1
    return Counter((k, s, s + WINDOW_MS, c) for (k, s), c in counts.items()), late


def produce_timed(kafka, topic: str, events: list[tuple[str, float]]) -> None:
    producer = kafka.producer()
    for key, seconds in events:
        producer.produce(topic, key=key, value=json.dumps({"page": key}), timestamp=at(seconds))
    if producer.flush(30):
        raise RuntimeError(f"test events were not delivered to {topic}")


def read_windows(kafka, topic: str, did: str) -> Counter:
    results = Counter()
    for r in kafka.read_all(topic, timeout=15):
        try:
            v = json.loads(r.value)
            item = (v["key"], int(v["window_start"]), int(v["window_end"]), int(v["count"]))
        except (TypeError, ValueError, KeyError):
            explain(did=did, saw=f"an output record {r.value!r:.100}",
                    expected='JSON {"key": ..., "window_start": ms, "window_end": ms, "count": n}')
        if r.key_text != item[0]:
            explain(did=did, saw=f"the result for {item[0]} has key {r.key!r}", expected=f"key {item[0].encode()!r}")
        results[item] += 1
    return results


def moment(ms: int) -> str:
    """Seconds after the data's first minute, or a UTC date when far from the data."""
    if abs(ms - BASE_MS) <= 24 * 3600 * 1000:
        return f"{(ms - BASE_MS) / 1000:g}s"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(window: tuple) -> str:
    key, start, end, count = window
    return f"{key} [{moment(start)}, {moment(end)}) count {count}"


def window_diff(got: Counter, want: Counter) -> str:
    parts = []
    twice = [w for w, n in got.items() if n > 1]
    if twice:
        parts.append("published more than once: " + ", ".join(describe(w) for w in twice[:3]))
    extra = [w for w in got if w not in want]
    missing = [w for w in want if w not in got]
    if extra:
        parts.append("unexpected: " + ", ".join(describe(w) for w in sorted(extra)[:4]))
    if missing:
        parts.append("missing: " + ", ".join(describe(w) for w in sorted(missing)[:4]))
    return "; ".join(parts) + " (times in seconds after the data's first minute)"


# ---------------------------------------------------------------------- the join

# The customers changelog, in write order. None is a tombstone.
CUSTOMER_LOG = [
    ("c-01", {"name": "Ada", "tier": "bronze"}), ("c-02", {"name": "Bob", "tier": "bronze"}),
    ("c-03", {"name": "Cyd", "tier": "silver"}), ("c-04", {"name": "Dee", "tier": "bronze"}),
    ("c-05", {"name": "Eli", "tier": "gold"}), ("c-06", {"name": "Fay", "tier": "bronze"}),
    ("c-07", {"name": "Gus", "tier": "bronze"}),
    ("c-01", {"name": "Ada", "tier": "silver"}), ("c-02", {"name": "Bob B.", "tier": "bronze"}),
    ("c-05", None),                               # Eli deletes the account
    ("c-01", {"name": "Ada", "tier": "gold"}), ("c-04", {"name": "Dee", "tier": "silver"}),
    ("c-07", None), ("c-07", {"name": "Gus", "tier": "platinum"}),  # deleted, then signed up again
    ("c-06", None),
    ("c-03", {"name": "Cyd", "tier": "gold"}),
]
UPDATED = ["c-01", "c-02", "c-03", "c-04"]      # several values: the latest must win
GONE_OR_BACK = ["c-05", "c-06", "c-07", "c-99"]  # deleted, deleted, deleted then re-created, never existed


def customer_table() -> dict[str, dict]:
    table: dict[str, dict] = {}
    for key, value in CUSTOMER_LOG:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def make_orders(customers: list[str], per_customer: int = 3) -> list[dict]:
    return [{"order_id": f"o-{c}-{n}", "customer_id": c, "amount": 10 * (n + 1)}
            for n in range(per_customer) for c in customers]
