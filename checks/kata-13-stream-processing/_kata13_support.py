"""Test data and reference results for kata-13's checks (not shown to learners)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from grader.checklib import explain


@dataclass(frozen=True)
class Clock:
    """A window size, a grace period and the data's first instant (aligned to the window size, so the
    data's windows are the epoch-aligned ones; the README's start = ts - ts % window_ms)."""
    window_ms: int
    grace_ms: int
    base_ms: int

    def at(self, seconds: float) -> int:
        return self.base_ms + round(seconds * 1000)


# Event times far from today (2017-07-14). The first clock is aligned to the minute; the second uses
# 45 s windows whose data starts half a minute off the minute: windows aligned to whole minutes (a
# datetime truncated to the minute), to the first event, or to the processing time all come out wrong.
MINUTE = Clock(60_000, 10_000, 25_000_000 * 60_000)
ODD = Clock(45_000, 7_500, 33_333_334 * 45_000)
assert ODD.base_ms % 60_000 == 30_000

# (page, seconds after the clock's base): in order, or out of order but within the grace period.
# Some sit exactly on a window boundary (they open the next window: windows are [start, end)), some a
# millisecond before one, and one page id is not ASCII (keys are UTF-8).
ON_TIME = [("page-a", 5), ("page-b", 12), ("page-a", 30), ("page-a", 59.999), ("page-b", 60),
           ("page-b", 61), ("page-a", 55),   # out of order; stream time 61 < 60 + 10: window 0 is still open
           ("café", 59.999), ("café", 60.001),
           ("page-b", 68), ("page-a", 69.999),  # 69.999 < 70: window 0 still open (closes at 70)
           ("page-a", 59),  # out of order, a millisecond-true 69.999 stream time: still on time
           ("page-c", 125), ("page-a", 121),
           ("page-b", 118),  # out of order; stream time 125 < 120 + 10
           ("page-c", 129.999), ("page-a", 150), ("page-b", 185),
           ("page-c", 179),  # out of order; stream time 185 < 180 + 10
           ("page-a", 240), ("café", 240), ("page-b", 245), ("page-a", 299), ("page-c", 301)]

# Some events arrive after their window closed, on the ODD clock (45 s windows, 7.5 s grace).
WITH_LATE = [("page-a", 3.75), ("page-a", 15), ("page-b", 22.5),
             ("page-a", 56.25),   # stream time 56.25 >= 45 + 7.5: window 0 closes
             ("page-a", 43.5),    # late
             ("page-b", 37.5),    # late
             ("page-c", 7.5),     # late (its window never had a counted event)
             ("page-b", 60), ("page-b", 45),  # window 1 [45, 90): on time
             ("page-b", 91),      # window 2 opens for page-b...
             ("page-c", 50),      # ...before page-c's window 1 does (stream time 91 < 97.5: on time)
             ("page-a", 97.5),    # stream time 97.5 == 90 + 7.5: window 1 closes exactly now
             ("page-b", 89.999),  # late, at the closing instant
             ("page-a", 93.75),
             ("page-b", 150),     # stream time 150 >= 135 + 7.5: window 2 closes
             ("page-a", 134.25),  # late
             ("page-b", 146.25), ("page-c", 179.25), ("page-c", 135)]


def reference_windows(clock: Clock, events: list[tuple[str, float]]) -> tuple[Counter, int]:
    """(Counter of (key, start, end, count) results, number of late events) per the README's rules."""
    counts: dict[tuple[str, int], int] = {}
    stream_time = None
    late = 0
    for key, seconds in events:
        ts = clock.at(seconds)
        start = ts - ts % clock.window_ms
        stream_time = ts if stream_time is None else max(stream_time, ts)
        if stream_time >= start + clock.window_ms + clock.grace_ms:
            late += 1
            continue
        counts[(key, start)] = counts.get((key, start), 0) + 1
    return Counter((k, s, s + clock.window_ms, c) for (k, s), c in counts.items()), late


def closing_points(clock: Clock, events: list[tuple[str, float]]) -> dict[tuple[str, int], int]:
    """(key, window start) -> the index of the event at which the window closes (stream time reaches
    its end + grace); len(events) for the windows still open when the input ends."""
    starts = {}
    stream_time = None
    for key, seconds in events:
        ts = clock.at(seconds)
        stream_time = ts if stream_time is None else max(stream_time, ts)
        if stream_time < ts - ts % clock.window_ms + clock.window_ms + clock.grace_ms:
            starts.setdefault((key, ts - ts % clock.window_ms), None)
    points = {}
    stream_time = None
    for i, (_key, seconds) in enumerate(events):
        ts = clock.at(seconds)
        stream_time = ts if stream_time is None else max(stream_time, ts)
        for w in starts:
            if w not in points and stream_time >= w[1] + clock.window_ms + clock.grace_ms:
                points[w] = i
    return {w: points.get(w, len(events)) for w in starts}


def out_of_closing_order(clock: Clock, published: list[tuple], points: dict) -> str:
    """'' when the windows were published in the order they closed, else what came too late."""
    latest = -1
    for i, item in enumerate(published):
        point = points.get((item[0], item[1]), len(points) + 10**6)
        if point < latest:
            earlier = published[i - 1]
            return f"{describe(clock, item)} came out after {describe(clock, earlier)}, though it closed first"
        latest = max(latest, point)
    return ""


def produce_timed(kafka, topic: str, clock: Clock, events: list[tuple[str, float]]) -> None:
    producer = kafka.producer()
    for key, seconds in events:
        producer.produce(topic, key=key.encode(), value=json.dumps({"page": key}), timestamp=clock.at(seconds))
    if producer.flush(30):
        raise RuntimeError(f"test events were not delivered to {topic}")


def read_windows(kafka, topic: str, did: str) -> tuple[Counter, list[tuple]]:
    """(Counter of (key, start, end, count), the same results in the order they were published)."""
    results, published = Counter(), []
    for r in kafka.read_all(topic, timeout=15):
        try:
            v = json.loads(r.value)
            item = (v["key"], v["window_start"], v["window_end"], v["count"])
        except (TypeError, ValueError, KeyError):
            explain(did=did, saw=f"an output record {r.value!r:.100}",
                    expected='JSON {"key": ..., "window_start": ms, "window_end": ms, "count": n}')
        if set(v) != {"key", "window_start", "window_end", "count"} or not all(
                type(x) is int for x in item[1:]):
            explain(did=did, saw=f"an output record {r.value!r:.160}",
                    expected='exactly the fields "key", "window_start", "window_end" (milliseconds) and "count", '
                    "the last three JSON integers")
        if r.key_text != item[0]:
            explain(did=did, saw=f"the result for {item[0]} has key {r.key!r}", expected=f"key {item[0].encode()!r}")
        results[item] += 1
        published.append(item)
    return results, published


def moment(clock: Clock, ms) -> str:
    """Seconds after the data's first instant, or a UTC date when far from the data."""
    if not isinstance(ms, int):
        return repr(ms)
    if abs(ms - clock.base_ms) <= 24 * 3600 * 1000:
        return f"{(ms - clock.base_ms) / 1000:g}s"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(clock: Clock, window: tuple) -> str:
    key, start, end, count = window
    return f"{key} [{moment(clock, start)}, {moment(clock, end)}) count {count}"


def window_diff(clock: Clock, got: Counter, want: Counter) -> str:
    parts = []
    twice = [w for w, n in got.items() if n > 1]
    if twice:
        parts.append("published more than once: " + ", ".join(describe(clock, w) for w in twice[:3]))
    extra = [w for w in got if w not in want]
    missing = [w for w in want if w not in got]
    if extra:
        parts.append("unexpected: " + ", ".join(describe(clock, w) for w in sorted(extra, key=repr)[:4]))
    if missing:
        parts.append("missing: " + ", ".join(describe(clock, w) for w in sorted(missing)[:4]))
    return "; ".join(parts) + " (times in seconds after the data's first event time)"


# ---------------------------------------------------------------------- the join

# The customers changelog, in write order. None is a tombstone. The first part is written before the
# orders, the second after them (still before enrich_orders is called): "current" means the table as
# it is when the function runs, whatever the order of writes between the two topics.
CUSTOMERS_BEFORE = [
    ("c-01", {"name": "Ada", "tier": "bronze"}), ("c-02", {"name": "Bob", "tier": "bronze"}),
    ("c-03", {"name": "Cyd", "tier": "silver"}), ("c-04", {"name": "Dee", "tier": "bronze"}),
    ("c-05", {"name": "Eli", "tier": "gold"}), ("c-06", {"name": "Fay", "tier": "bronze"}),
    ("c-07", {"name": "Gus", "tier": "bronze"}), ("c-08", {"name": "Zoë Ångström", "tier": "bronze"}),
    ("c-01", {"name": "Ada", "tier": "silver"}), ("c-02", {"name": "Bob B.", "tier": "bronze"}),
    ("c-05", None),                               # Eli deletes the account
    ("c-04", {"name": "Dee", "tier": "silver"}),
    ("c-07", None), ("c-07", {"name": "Gus", "tier": "platinum"}),  # deleted, then signed up again
]
CUSTOMERS_AFTER = [
    ("c-01", {"name": "Ada", "tier": "gold"}),
    ("c-06", None),                               # Fay deletes the account after ordering
    ("c-03", {"name": "Cyd", "tier": "gold"}),
    ("c-08", {"name": "Zoë Ångström", "tier": "gold", "tags": ["vip", "nordic"]}),
    ("c-09", {"name": "Hal", "tier": "silver"}),  # signs up after ordering
]
CUSTOMER_LOG = CUSTOMERS_BEFORE + CUSTOMERS_AFTER
UPDATED = ["c-01", "c-02", "c-03", "c-04", "c-08"]       # several values: the latest must win
GONE_OR_BACK = ["c-05", "c-06", "c-07", "c-09", "c-99"]  # deleted, deleted later, re-created, created later, unknown


def customer_table() -> dict[str, dict]:
    table: dict[str, dict] = {}
    for key, value in CUSTOMER_LOG:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def make_orders(customers: list[str], per_customer: int = 2) -> list[tuple[bytes | None, dict]]:
    """(record key, order) pairs: keyed by order id (not by customer), one order without a key."""
    orders = []
    for n in range(per_customer):
        for c in customers:
            order = {"order_id": f"o-{c}-{n}", "customer_id": c, "amount": 10 * (n + 1)}
            if n == 1:
                order["note"] = "déjà vu, ünïcödé"
            orders.append((order["order_id"].encode(), order))
    orders[-1] = (None, orders[-1][1])
    return orders


def history(customer_id: str) -> list:
    return ["tombstone" if v is None else v for k, v in CUSTOMER_LOG if k == customer_id]
