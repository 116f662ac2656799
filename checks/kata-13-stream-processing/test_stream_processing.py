"""Hidden checks for kata-13 (event-time windows with grace, stream-table join). Never shown to learners."""

import gc
import json
import threading

import pytest
from _kata13_support import (
    CUSTOMERS_AFTER,
    CUSTOMERS_BEFORE,
    GONE_OR_BACK,
    MINUTE,
    ODD,
    ON_TIME,
    UPDATED,
    WITH_LATE,
    closing_points,
    customer_table,
    history,
    make_orders,
    out_of_closing_order,
    produce_timed,
    read_windows,
    reference_windows,
    window_diff,
)

from grader.checklib import explain

# Every KafkaKit of this run stays referenced until the run ends. A failing check leaves its kit in a
# reference cycle (traceback <-> frames); if the cyclic GC then frees it inside the AdminClient's own
# librdkafka background thread (which runs Python to resolve the kit's last delete_topics() future),
# librdkafka aborts the whole check process: "rd_kafka_destroy() called from librdkafka owned thread".
_KITS = []


@pytest.fixture(autouse=True)
def _keep_kit_alive(kafka):
    _KITS.append(kafka)


def call(did: str, fn, *args):
    failure = None
    try:
        return fn(*args)
    except NotImplementedError as exc:
        failure = {"saw": f"NotImplementedError: {exc}", "expected": "the function to be implemented"}
    except Exception as exc:  # the learner's code failed: say so in their terms
        failure = {"saw": f"it raised {type(exc).__name__}: {exc}", "expected": "it to return normally",
                   "nudge": "read the exception: did a record surprise your code?", "seen_in": "your function"}
    finally:
        # Free what the learner's code left behind (an unclosed client in a suspended generator, an
        # exception's frames) here, in the main thread, not whenever the GC next runs in some
        # librdkafka thread; and explain() below, outside the except, so no traceback keeps it alive.
        gc.collect()
    explain(did=did, **failure)


def run_windows(kafka, impl, clock, events):
    # retention.ms=-1: time-based retention looks at record timestamps, and these are years old:
    # with the default 7 days the broker would delete them within a second.
    source = kafka.create_topic(partitions=1, config={"retention.ms": "-1"})
    sink = kafka.create_topic(partitions=1, config={"retention.ms": "-1"})
    produce_timed(kafka, source, clock, events)
    did = (f"produced {len(events)} page views with explicit timestamps (2017, some out of order, some exactly on a "
           f"window boundary) to a 1-partition topic and called count_windows(bootstrap, input, output, "
           f"window_ms={clock.window_ms}, grace_ms={clock.grace_ms})")
    late = call(did, impl.count_windows, kafka.bootstrap_servers, source, sink, clock.window_ms, clock.grace_ms)
    # Read right after the return: "return only when every result is delivered".
    return did, late, *read_windows(kafka, sink, did + ", then read the output topic")


def check_closing_order(did: str, clock, events, published) -> None:
    wrong = out_of_closing_order(clock, published, closing_points(clock, events))
    if wrong:
        explain(did=did + ", then read the output topic (one partition: the order of publication)", saw=wrong,
                expected="each window published when it closes (stream time >= its end + grace), so in the order "
                "they close; the windows still open when the input ends last",
                nudge="downstream consumers wait for a window's result: publish it as soon as no event can change "
                "it any more, not only when the input ends (a stream has no end).")


def check_late(did: str, late, late_want: int, nudge: str) -> None:
    if type(late) is not int or late != late_want:
        explain(did=did, saw=f"count_windows returned {late!r}", seen_in="your function's return value",
                expected=f"{late_want}: the number of late events it dropped (an int)", nudge=nudge)


def test_counts_per_event_time_window(kafka, impl):
    """Events in order, or out of order within the grace period, are counted in their event-time window."""
    want, late_want = reference_windows(MINUTE, ON_TIME)
    assert late_want == 0, "check data: no event of ON_TIME may be late"
    did, late, got, published = run_windows(kafka, impl, MINUTE, ON_TIME)
    if got != want:
        explain(did=did + ", then read the output topic",
                saw=window_diff(MINUTE, got, want) if got else "no results at all",
                expected=f"{len(want)} window results, one per (page, window), each with its final count; a window "
                "is [start, end): an event exactly at a window's end belongs to the next one",
                nudge="when did these page views happen: when the producer said, or when your code read them? "
                "Out-of-order events within the grace period still count, and every window must come out once, "
                "including those still open when the input ends.")
    check_late(did, late, 0, "no event arrived after its window closed (window end + grace): what did you count?")
    check_closing_order(did, MINUTE, ON_TIME, published)


def test_late_events_are_dropped_and_counted(kafka, impl):
    """Events whose window has closed are dropped, no window is published twice, and the drops are reported."""
    want, late_want = reference_windows(ODD, WITH_LATE)
    did, late, got, published = run_windows(kafka, impl, ODD, WITH_LATE)
    if got != want:
        explain(did=did + ", then read the output topic", saw=window_diff(ODD, got, want) if got else "no results",
                expected=f"{len(want)} window results, each once, on windows aligned to 0 (start = ts - ts % "
                f"window_ms); the {late_want} events that arrived after their window closed (stream time >= window "
                "end + grace) counted nowhere",
                nudge="a closed window's result is already out. What may a late event still change? And stream "
                "time only moves forward: does an out-of-order event turn your clock back?")
    check_late(did, late, late_want, "one of them arrives exactly at the closing instant. Is 'closed' >= or >?")
    check_closing_order(did, ODD, WITH_LATE, published)


_JOIN: dict = {}
SINK_DELAY_S = 2.0


def joined(kafka, impl, customers: list[str]):
    """One enrich_orders run (all customers) serves both join checks: the first check that needs it runs it,
    the other reads the same result (or fails with the same explanation)."""
    if not _JOIN:
        try:
            _JOIN["result"] = run_join(kafka, impl, UPDATED + GONE_OR_BACK)
        except (Exception, pytest.fail.Exception) as exc:  # explain() raised: both checks fail the same way
            _JOIN["failure"] = exc
    if "failure" in _JOIN:
        raise _JOIN["failure"]
    did, orders, out = _JOIN["result"]
    return did, [o for o in orders if o["customer_id"] in customers], out


def run_join(kafka, impl, customers: list[str]):
    customers_topic = kafka.create_topic(partitions=3, config={"cleanup.policy": "compact"})
    orders_topic = kafka.create_topic(partitions=3)
    sink = kafka.unique("enriched")
    as_records = [(k, None if v is None else json.dumps(v, ensure_ascii=False)) for k, v in CUSTOMERS_BEFORE]
    kafka.produce(customers_topic, as_records)
    orders = make_orders(customers)
    producer = kafka.producer()
    for key, order in orders:
        producer.produce(orders_topic, key=key, value=json.dumps(order, ensure_ascii=False).encode())
    assert producer.flush(30) == 0, "the check could not write its orders"
    kafka.produce(customers_topic, [(k, None if v is None else json.dumps(v, ensure_ascii=False))
                                    for k, v in CUSTOMERS_AFTER])
    did = (f"wrote {len(CUSTOMERS_BEFORE)} customer changes (updates and tombstones) to a compacted 3-partition "
           f"topic, {len(orders)} orders (keyed by order id, one without a key) to another, {len(CUSTOMERS_AFTER)} "
           "more customer changes, and called enrich_orders")
    # The output topic appears only a moment after the call (as a topic being created or propagated
    # would): the producer keeps the results queued until then, so returning without waiting for the
    # deliveries loses them every time, not only when the timing happens to be bad.
    returned = threading.Event()
    creator = threading.Thread(target=lambda: (returned.wait(SINK_DELAY_S), kafka.create_topic(sink, 3)))
    creator.start()
    try:
        call(did + f" (its output topic created {SINK_DELAY_S:g}s after the call, or when it returned)",
             impl.enrich_orders, kafka.bootstrap_servers, orders_topic, customers_topic, sink)
    finally:
        returned.set()
        creator.join()
    did += ", then read the output topic"
    out, keys = {}, {}
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
        out[oid], keys[oid] = value, r.key
    missing = [o["order_id"] for _, o in orders if o["order_id"] not in out]
    if missing:
        explain(did=did, saw=f"{len(out)} enriched orders; missing {missing[:4]}", expected=f"all {len(orders)}",
                nudge="does enrich_orders return before the producer delivered everything?" if out else "")
    for key, o in orders:
        if keys[o["order_id"]] != key:
            explain(did=did, saw=f"order {o['order_id']} has key {keys[o['order_id']]!r}",
                    expected=f"the order record's own key, {key!r}", nudge="the join adds a field; it does not re-key.")
        rest = {k: v for k, v in out[o["order_id"]].items() if k != "customer"}
        if rest != o:
            explain(did=did, saw=f"order {o['order_id']} came out as {rest}", expected=f"its fields unchanged: {o}")
    return did, [o for _, o in orders], out


def test_orders_carry_the_latest_customer_value(kafka, impl):
    """Orders are enriched with each customer's latest value, after several updates."""
    did, orders, out = joined(kafka, impl, UPDATED)
    table = customer_table()
    for o in orders:
        got, want = out[o["order_id"]]["customer"], table[o["customer_id"]]
        if got != want:
            explain(did=did, saw=f"order {o['order_id']} of {o['customer_id']} carries {json.dumps(got)}",
                    expected=f"{json.dumps(want)} (a JSON object), the latest of {o['customer_id']}'s values "
                    f"{history(o['customer_id'])}",
                    nudge="a compacted topic is a changelog read in order, on every partition. What does a later "
                    "record for the same key mean for the earlier ones, even one written after the order?")


def test_deleted_and_unknown_customers_join_to_null(kafka, impl):
    """Orders of deleted (tombstoned) or unknown customers carry "customer": null; re-created ones the new value."""
    did, orders, out = joined(kafka, impl, GONE_OR_BACK)
    table = customer_table()
    for o in orders:
        got, want = out[o["order_id"]]["customer"], table.get(o["customer_id"])
        if got != want:
            explain(did=did, saw=f"order {o['order_id']} of {o['customer_id']} carries {json.dumps(got)}",
                    expected=f"{json.dumps(want)} ({o['customer_id']}'s changes, in order: "
                    f"{history(o['customer_id']) or 'none'})",
                    nudge="a record with a key and no value is not noise in a changelog. What does it say?")


def test_results_that_cannot_be_delivered_raise(kafka, impl):
    """Both functions raise when the output topic refuses their results, instead of returning as if delivered."""
    # max.message.bytes=64: smaller than any batch holding one result, so the broker refuses every write.
    refusing = {"max.message.bytes": "64", "retention.ms": "-1"}
    source = kafka.create_topic(partitions=1, config={"retention.ms": "-1"})
    produce_timed(kafka, source, MINUTE, ON_TIME[:3])
    did = ("called count_windows(bootstrap, input, output, ...) on 3 page views, with an output topic whose "
           "max.message.bytes=64 refuses every result")
    try:
        impl.count_windows(kafka.bootstrap_servers, source, kafka.create_topic(config=refusing), MINUTE.window_ms,
                           MINUTE.grace_ms)
    except Exception:  # noqa: BLE001 - any exception is the answer wanted here
        pass
    else:
        explain(did=did, saw="count_windows returned normally", seen_in="your function",
                expected="it raises: not one result was delivered",
                nudge="flush() returns when nothing is left to send, delivered or refused. Where does a failed "
                "delivery become visible?")
    customers, orders = kafka.create_topic(config={"cleanup.policy": "compact"}), kafka.create_topic()
    kafka.produce(customers, [("c-01", json.dumps({"name": "Ada"}))])
    kafka.produce(orders, [("o-1", json.dumps({"order_id": "o-1", "customer_id": "c-01", "amount": 5}))])
    did = "called enrich_orders on one order, with an output topic whose max.message.bytes=64 refuses every write"
    try:
        impl.enrich_orders(kafka.bootstrap_servers, orders, customers, kafka.create_topic(config=refusing))
    except Exception:  # noqa: BLE001 - any exception is the answer wanted here
        return
    explain(did=did, saw="enrich_orders returned normally", seen_in="your function",
            expected="it raises: the enriched order was not delivered",
            nudge="what did the delivery report of that order say?")
