"""Hidden checks for kata-01 (keyed partitioning). Never shown to learners."""

import json
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from _kata01_support import CUSTOMERS, default_partition, keyed_partitioners_matching, make_orders

from grader.kit import KafkaKit, explain, load_learner_module, pictures

# Two topics, neither with the README's 6 partitions: a partition count written into the code
# shows. Topic "a" gets two calls, so a customer must stay on its partition across calls; 5
# partitions for 9 customers means some customers share a partition (their orders interleave).
TOPICS = {"a": 5, "b": 8}
CALLS = [("a", slice(0, 20)), ("b", slice(20, 38)), ("a", slice(38, None))]


@dataclass
class Published:
    orders: dict = field(default_factory=dict)  # topic label -> the orders sent to it, in call order
    records: dict = field(default_factory=dict)  # topic label -> the records read back
    partitions: dict = field(default_factory=dict)  # topic label -> partition count
    failure: dict | None = None  # an explain() of the call that raised, if one did


@pytest.fixture(scope="module")
def published(bootstrap_servers, impl_path, pytestconfig):
    """Publish once for every check of the module (each call is what a real service would do per batch)."""
    impl = load_learner_module(impl_path)
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{pytestconfig.getoption('--kata-run-id') or 'local'}-k01")
    out = Published()
    try:
        names = {label: kit.create_topic(partitions=n) for label, n in TOPICS.items()}
        orders = make_orders()
        for label, part in CALLS:
            batch = orders[part]
            out.orders.setdefault(label, []).extend(batch)
            try:
                impl.publish_orders(kit.bootstrap_servers, names[label], batch)
            except Exception as exc:  # the learner's code failed: say so in their terms
                out.failure = dict(
                    did=f"called publish_orders(bootstrap, <a {TOPICS[label]}-partition topic>, <{len(batch)} "
                    "orders>) on a healthy broker",
                    saw=f"it raised {type(exc).__name__}: {exc}", expected="it returns once every order is delivered",
                    nudge="the broker accepts every one of these orders, so look at what your code counts as a "
                    "failure (a delivery report without an error is a success), which partition it asks for (does "
                    "it exist on this topic?) and how long it waits for the acknowledgements.",
                    seen_in="your function")
                break
        if not out.failure:
            for label, topic in names.items():
                out.partitions[label] = TOPICS[label]
                out.records[label] = kit.read_all(topic, timeout=10)
        yield out
    finally:
        kit.close()


def _checked(published):
    """The records of each topic with their decoded orders, after the call itself succeeded."""
    if published.failure:
        explain(**published.failure)
    out = {}
    for label, records in published.records.items():
        decoded = []
        for r in records:
            try:
                decoded.append((r, json.loads(r.value)))
            except (TypeError, ValueError):
                explain(did="read the topic back and parsed each value as JSON",
                        saw=f"partition {r.partition} offset {r.offset} holds {r.value!r:.80}",
                        expected="each value to be the order as JSON (json.dumps(order)), UTF-8 encoded",
                        nudge="str(order) is Python's notation, not JSON.")
            if not isinstance(decoded[-1][1], dict) or "order_id" not in decoded[-1][1]:
                explain(did="read the topic back and parsed each value as JSON",
                        saw=f"partition {r.partition} offset {r.offset} holds {r.value!r:.80}",
                        expected="each value to be the whole order as JSON (json.dumps(order))")
        if not decoded:
            explain(did=f"called publish_orders {sum(lbl == label for lbl, _ in CALLS)} time(s) for a topic, then "
                    "read it from the beginning as soon as it returned",
                    saw="the topic is empty: nothing was delivered",
                    expected=f"the {len(published.orders[label])} orders",
                    nudge="produce() only queues a record in memory. Is anything still queued when your "
                    "function returns?")
        out[label] = decoded
    return out


def test_every_order_is_delivered(published):
    """Every order reaches the broker exactly once before publish_orders returns."""
    for label, decoded in _checked(published).items():
        sent = published.orders[label]
        seen = defaultdict(int)
        for _, order in decoded:
            seen[order.get("order_id")] += 1
        missing = [o["order_id"] for o in sent if seen[o["order_id"]] == 0]
        dupes = sorted(k for k, v in seen.items() if v > 1)
        extra = sorted(set(seen) - {o["order_id"] for o in sent})
        if missing or dupes or extra:
            explain(did=f"called publish_orders with {len(sent)} orders for a {published.partitions[label]}-"
                    "partition topic, then read it from the beginning as soon as the function returned",
                    saw=f"{len(decoded)} records; {len(missing)} orders missing (e.g. {missing[:3]}), "
                    f"{len(dupes)} duplicated (e.g. {dupes[:3]}), {len(extra)} not sent to this topic",
                    expected=f"{len(sent)} records, each order exactly once",
                    nudge="produce() only queues a record in memory: what happens to the queue when your function "
                    "returns?" if missing else "is each order produced exactly once, to the topic it was given?")


def test_value_is_the_order_as_json(published):
    """Each record's value is its whole order as JSON, unchanged."""
    for label, decoded in _checked(published).items():
        sent = {o["order_id"]: o for o in published.orders[label]}
        for record, order in decoded:
            if order != sent.get(order["order_id"]):
                explain(did="parsed each record's value as JSON and compared it with the order that was sent",
                        saw=f"{record.value!r:.160}", expected=f"{json.dumps(sent.get(order['order_id']))[:160]}",
                        nudge="the value is the whole order, every field, as json.dumps(order) writes it.")


def _lanes(decoded, spread, n_partitions):
    """Each partition's records in offset order, labelled with their customer; a split customer's are marked."""
    lanes = {p: [] for p in range(n_partitions)}
    for record, order in sorted(decoded, key=lambda ro: (ro[0].partition, ro[0].offset)):
        if len(lanes[record.partition]) < 24:  # enough to see the pattern; the text has the counts
            customer = str(order.get("customer_id"))
            lanes[record.partition].append(pictures.lane_record(record.offset, customer[-8:],
                                                                "split" if customer in spread else ""))
    return pictures.lanes("Each partition's records in offset order, by customer_id", lanes,
                          legend="offset:customer; (split) marks a customer whose orders are on more than one "
                          "partition")


def test_key_is_the_customer_id(published):
    """Each record's key is its order's customer id, as UTF-8 bytes."""
    for decoded in _checked(published).values():
        for record, order in decoded:
            want = order["customer_id"].encode("utf-8")
            if record.key != want:
                explain(did="compared each record's key with its order's customer_id",
                        saw=f"order {order['order_id']} of {order['customer_id']!r} has key {record.key!r}",
                        expected=f"key {want!r} (the id's UTF-8 bytes)",
                        nudge="the key is what the partitioner hashes, and what compaction and consumers see "
                        "as the record's identity." if record.key is None else
                        "the key is the customer id itself, encoded as UTF-8: no quotes, no other encoding.")


def test_each_customer_on_one_partition(published):
    """All orders of one customer land on a single partition, across calls too."""
    for label, decoded in _checked(published).items():
        partitions = defaultdict(set)
        for record, order in decoded:
            partitions[order["customer_id"]].add(record.partition)
        spread = {c: sorted(p) for c, p in partitions.items() if len(p) > 1}
        if spread:
            customer, parts = next(iter(spread.items()))
            calls = sum(lbl == label for lbl, _ in CALLS)
            pictures.attach(_lanes(decoded, spread, published.partitions[label]))
            explain(did=f"called publish_orders {calls} time(s) for a {published.partitions[label]}-partition "
                    "topic and grouped its records by customer_id",
                    saw=f"{len(spread)} of {len(partitions)} customers are split across partitions "
                    f"(e.g. {customer} on partitions {parts})",
                    expected="every customer's orders on exactly one partition",
                    nudge="the default partitioner only sends records to the same partition when they share "
                    "something. What do all of one customer's orders share?")


def test_partition_follows_the_key(published):
    """The producer's partitioner picks each partition from the key; the code never picks one itself."""
    placed, example = [], None
    for label, decoded in _checked(published).items():
        n = published.partitions[label]
        for record, _ in decoded:
            if record.key is None:
                explain(did="looked at the key of each record", saw=f"a record without a key on partition "
                        f"{record.partition}", expected="every record keyed, so the partitioner hashes the key",
                        nudge="without a key the partitioner spreads records however it likes.")
            placed.append((record.key, n, record.partition))
            if example is None and record.partition != default_partition(record.key, n):
                example = (record.key, n, record.partition)
    if not keyed_partitioners_matching(placed):
        key, n, got = example or placed[0]
        explain(did=f"compared each record's partition with the one a keyed partitioner picks for its key, on "
                f"topics of {' and '.join(str(v) for v in TOPICS.values())} partitions",
                saw=f"key {key!r} is on partition {got} of {n}; the default partitioner puts it on "
                f"{default_partition(key, n)}, and no keyed partitioner (CRC-32, murmur2, FNV-1a) explains "
                "every record",
                expected="each record where the producer's partitioner puts its key",
                nudge="choosing partitions yourself breaks in the ways the partitioner does not: a partition count "
                "that differs per topic, or Python's hash(), which is salted differently in every process.")


def test_customer_orders_keep_their_order(published):
    """Within its partition, each customer's orders appear in the order they were given."""
    for label, decoded in _checked(published).items():
        want, got = defaultdict(list), defaultdict(list)
        for o in published.orders[label]:
            want[o["customer_id"]].append(o["order_id"])
        for _, order in sorted(decoded, key=lambda ro: (ro[0].partition, ro[0].offset)):
            got[order["customer_id"]].append(order["order_id"])
        for customer in want:
            if got[customer] != want[customer]:
                explain(did=f"read {customer}'s orders partition by partition, in offset order",
                        saw=f"{got[customer][:6]}", expected=f"{want[customer][:6]} (the order publish_orders "
                        "received them)", nudge="does your code send the orders in the order it was given them, "
                        "on one partition?")


def test_partitions_keep_list_order(published):
    """On every partition, the records follow the order of the list they came from."""
    for label, decoded in _checked(published).items():
        position = {o["order_id"]: i for i, o in enumerate(published.orders[label])}
        by_partition = defaultdict(list)
        for record, order in sorted(decoded, key=lambda ro: (ro[0].partition, ro[0].offset)):
            by_partition[record.partition].append(order["order_id"])
        for partition, ids in by_partition.items():
            if ids != sorted(ids, key=lambda i: position.get(i, -1)):
                customers = sorted({o["customer_id"] for o in published.orders[label] if o["order_id"] in ids})
                explain(did="read each partition in offset order and compared it with the order of the list "
                        "publish_orders was given",
                        saw=f"partition {partition} (customers {customers}) holds {ids[:6]}…",
                        expected=f"{sorted(ids, key=lambda i: position.get(i, -1))[:6]}… (list order)",
                        nudge="send the orders in list order: reordering them, even customer by customer, changes "
                        "what a consumer of a shared partition sees.")


def test_refused_orders_raise(kafka, impl):
    """A call whose orders the broker refuses raises; the next call that succeeds does not."""
    topic = kafka.create_topic(partitions=3, config={"max.message.bytes": "2048"})
    small = [o for o in make_orders() if o["customer_id"] == CUSTOMERS[0]][:4]
    # The big order is another customer's, on another partition (cust-bob: 0, cust-ada: 2 of 3), so it
    # fails alone: the small orders around it are delivered, and "raise only if all failed" shows.
    big = {**[o for o in make_orders() if o["customer_id"] == CUSTOMERS[1]][0], "order_id": "ord-big",
           "note": "x" * 5000}
    batch = [small[0], big, small[2]]
    try:
        impl.publish_orders(kafka.bootstrap_servers, topic, batch)
    except Exception:  # noqa: BLE001 - any exception is the contract's "raise"
        pass
    else:
        landed = len(kafka.read_all(topic, timeout=5))
        explain(did=f"called publish_orders with {len(batch)} orders for a topic whose max.message.bytes is 2048, "
                "one of them a 5 KB order the broker refuses (MESSAGE_TOO_LARGE)",
                saw=f"it returned normally; the topic holds {landed} of the {len(batch)} orders",
                expected="an exception, because not every order could be delivered",
                nudge="a refused record leaves the producer's queue with an error, so flush() has nothing left "
                "to count: only the delivery report of each record says whether it was delivered"
                + (", and one refused order is a failure even when the others arrived." if landed else "."),
                seen_in="your function and the broker")
    again = [small[3]]
    try:
        impl.publish_orders(kafka.bootstrap_servers, topic, again)
    except Exception as exc:  # noqa: BLE001
        explain(did="after a call that failed, called publish_orders again with one small order the broker "
                "accepts", saw=f"it raised {type(exc).__name__}: {exc}",
                expected="it returns: every order of this call was delivered",
                nudge="are failures of an earlier call still counted (a list kept between calls)?",
                seen_in="your function")
    ids = [json.loads(r.value).get("order_id") for r in kafka.read_all(topic, timeout=5)]
    if again[0]["order_id"] not in ids:
        explain(did="after a call that failed, called publish_orders with one small order and read the topic",
                saw=f"the topic holds {ids}", expected=f"{again[0]['order_id']} among them",
                nudge="every call must deliver its own orders before it returns.")
