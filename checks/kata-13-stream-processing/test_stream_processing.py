"""Hidden checks for kata-13 (event-time windows with grace, stream-table join). Never shown to learners."""

import json

from _kata13_support import (
    CUSTOMER_LOG,
    GONE_OR_BACK,
    GRACE_MS,
    ON_TIME,
    UPDATED,
    WINDOW_MS,
    WITH_LATE,
    customer_table,
    make_orders,
    produce_timed,
    read_windows,
    reference_windows,
    window_diff,
)

from grader.kit import explain


def call(did: str, fn, *args):
    try:
        return fn(*args)
    except NotImplementedError as exc:
        explain(did=did, saw=f"NotImplementedError: {exc}", expected="the function to be implemented")
    except Exception as exc:  # the learner's code failed: say so in their terms
        explain(did=did, saw=f"it raised {type(exc).__name__}: {exc}", expected="it to return normally",
                nudge="read the exception: did a record surprise your code?")


def run_windows(kafka, impl, events):
    # retention.ms=-1: time-based retention looks at record timestamps, and these are years old:
    # with the default 7 days the broker would delete them within a second.
    source = kafka.create_topic(partitions=1, config={"retention.ms": "-1"})
    sink = kafka.create_topic(partitions=1, config={"retention.ms": "-1"})
    produce_timed(kafka, source, events)
    did = (f"produced {len(events)} page views with explicit timestamps (2017, some out of order) to a 1-partition "
           f"topic and called count_windows(bootstrap, input, output, window_ms={WINDOW_MS}, grace_ms={GRACE_MS})")
    late = call(did, impl.count_windows, kafka.bootstrap_servers, source, sink, WINDOW_MS, GRACE_MS)
    return did, late, read_windows(kafka, sink, did + ", then read the output topic")


def test_counts_per_event_time_window(kafka, impl):
    """Events in order, or out of order within the grace period, are counted in their event-time window."""
    want, late_want = reference_windows(ON_TIME)
    assert late_want == 0, "check data: no event of ON_TIME may be late"
    did, _late, got = run_windows(kafka, impl, ON_TIME)
    if got != want:
        explain(did=did + ", then read the output topic", saw=window_diff(got, want) if got else "no results at all",
                expected=f"{len(want)} window results, one per (page, window), each with its final count",
                nudge="when did these page views happen: when the producer said, or when your code read them?")


def test_late_events_are_dropped_and_counted(kafka, impl):
    """Events whose window has closed are dropped, no window is published twice, and the drops are reported."""
    want, late_want = reference_windows(WITH_LATE)
    did, late, got = run_windows(kafka, impl, WITH_LATE)
    if got != want:
        explain(did=did + ", then read the output topic", saw=window_diff(got, want) if got else "no results at all",
                expected=f"{len(want)} window results, each once; the {late_want} events that arrived after their "
                "window closed (stream time >= window end + grace) counted nowhere",
                nudge="a closed window's result is already out. What may a late event still change?")
    if late != late_want:
        explain(did=did, saw=f"count_windows returned {late!r}",
                expected=f"{late_want}: the number of late events it dropped",
                nudge="one of them arrives exactly at the closing instant. Is 'closed' >= or >?")


def run_join(kafka, impl, customers: list[str]):
    customers_topic = kafka.create_topic(partitions=3, config={"cleanup.policy": "compact"})
    orders_topic = kafka.create_topic(partitions=3)
    sink = kafka.create_topic(partitions=3)
    kafka.produce(customers_topic, [(k, None if v is None else json.dumps(v)) for k, v in CUSTOMER_LOG])
    orders = make_orders(customers)
    kafka.produce(orders_topic, [(o["customer_id"], json.dumps(o)) for o in orders])
    did = (f"wrote {len(CUSTOMER_LOG)} customer changes (updates and tombstones) to a compacted 3-partition topic, "
           f"{len(orders)} orders to another, and called enrich_orders")
    call(did, impl.enrich_orders, kafka.bootstrap_servers, orders_topic, customers_topic, sink)
    did += ", then read the output topic"
    out = {}
    for r in kafka.read_all(sink, timeout=15):
        try:
            value = json.loads(r.value)
            oid = value["order_id"]
        except (TypeError, ValueError, KeyError):
            explain(did=did, saw=f"an output record {r.value!r:.100}",
                    expected='the order\'s JSON with a "customer" field added')
        if oid in out:
            explain(did=did, saw=f"order {oid} twice", expected="each order enriched exactly once")
        if "customer" not in value:
            explain(did=did, saw=f"order {oid} without a \"customer\" field: {value}",
                    expected='"customer": the customer\'s current value, or null')
        if r.key_text != value.get("customer_id"):
            explain(did=did, saw=f"order {oid} has key {r.key!r}", expected="the order's own key (its customer id)")
        out[oid] = value
    missing = [o["order_id"] for o in orders if o["order_id"] not in out]
    if missing:
        explain(did=did, saw=f"{len(out)} enriched orders; missing {missing[:4]}", expected=f"all {len(orders)}")
    for o in orders:
        rest = {k: v for k, v in out[o["order_id"]].items() if k != "customer"}
        if rest != o:
            explain(did=did, saw=f"order {o['order_id']} came out as {rest}", expected=f"its fields unchanged: {o}")
    return did, orders, out


def test_orders_carry_the_latest_customer_value(kafka, impl):
    """Orders are enriched with each customer's latest value, after several updates."""
    did, orders, out = run_join(kafka, impl, UPDATED)
    table = customer_table()
    for o in orders:
        got, want = out[o["order_id"]]["customer"], table[o["customer_id"]]
        if got != want:
            history = [v for k, v in CUSTOMER_LOG if k == o["customer_id"]]
            explain(did=did, saw=f"order {o['order_id']} of {o['customer_id']} carries {got}",
                    expected=f"{want}, the latest of {o['customer_id']}'s values {history}",
                    nudge="a compacted topic is a changelog read in order. What does a later record for the same key "
                    "mean for the earlier ones?")


def test_deleted_and_unknown_customers_join_to_null(kafka, impl):
    """Orders of deleted (tombstoned) or unknown customers carry "customer": null; re-created ones the new value."""
    did, orders, out = run_join(kafka, impl, GONE_OR_BACK)
    table = customer_table()
    for o in orders:
        got, want = out[o["order_id"]]["customer"], table.get(o["customer_id"])
        if got != want:
            history = ["tombstone" if v is None else v for k, v in CUSTOMER_LOG if k == o["customer_id"]]
            explain(did=did, saw=f"order {o['order_id']} of {o['customer_id']} carries {got}",
                    expected=f"{json.dumps(want)} ({o['customer_id']}'s changes, in order: {history or 'none'})",
                    nudge="a record with a key and no value is not noise in a changelog. What does it say?")
