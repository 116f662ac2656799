"""Hidden checks for kata-01 (keyed partitioning). Never shown to learners."""

import json
from collections import defaultdict

import pytest

from grader.kit import explain

PARTITIONS = 6
CUSTOMERS = ["cust-ada", "cust-bob", "cust-cyd", "cust-dee", "cust-eli", "cust-fay", "cust-gus"]
ORDERS_PER_CUSTOMER = 8
BATCHES = 3  # the function is called once per incoming batch, like a real service


def make_orders() -> list[dict]:
    # Interleaved on purpose: a customer's orders are mixed with everyone else's.
    orders = []
    for seq in range(ORDERS_PER_CUSTOMER):
        for n, customer in enumerate(CUSTOMERS):
            orders.append({"order_id": f"o-{seq:02d}{n:02d}", "customer_id": customer, "seq": seq,
                           "amount": 10 + seq})
    return orders


@pytest.fixture
def published(kafka, impl):
    topic = kafka.create_topic(partitions=PARTITIONS)
    orders = make_orders()
    size = len(orders) // BATCHES + 1
    for start in range(0, len(orders), size):
        batch = orders[start:start + size]
        try:
            impl.publish_orders(kafka.bootstrap_servers, topic, batch)
        except Exception as exc:  # the learner's code failed: say so in their terms
            explain(did=f"called publish_orders(bootstrap, {topic!r}, <{len(batch)} orders>)",
                    saw=f"it raised {type(exc).__name__}: {exc}",
                    expected="it returns once every order is delivered")
    records = kafka.read_all(topic, timeout=10)
    return orders, records


def _decoded(records):
    out = []
    for r in records:
        try:
            out.append((r, json.loads(r.value)))
        except (TypeError, ValueError):
            explain(did="read the topic back and parsed each value as JSON",
                    saw=f"partition {r.partition} offset {r.offset} holds {r.value!r:.80}",
                    expected="each value to be the order as JSON (json.dumps(order))")
    return out


def test_every_order_is_delivered(published):
    """Every order reaches the broker exactly once before publish_orders returns."""
    orders, records = published
    seen = defaultdict(int)
    for _, order in _decoded(records):
        seen[order.get("order_id")] += 1
    missing = [o["order_id"] for o in orders if seen[o["order_id"]] == 0]
    dupes = sorted(k for k, v in seen.items() if v > 1)
    if missing or dupes:
        explain(did=f"called publish_orders with {len(orders)} orders in {BATCHES} batches, then read the topic "
                "from the beginning",
                saw=f"{len(records)} records; {len(missing)} orders missing (e.g. {missing[:3]}), "
                f"{len(dupes)} duplicated",
                expected=f"{len(orders)} records, each order exactly once",
                nudge="produce() only queues a record in memory. What happens to the queue when your function "
                "returns?")


def test_each_customer_on_one_partition(published):
    """All orders of one customer land on a single partition."""
    _, records = published
    partitions = defaultdict(set)
    for record, order in _decoded(records):
        partitions[order["customer_id"]].add(record.partition)
    spread = {c: sorted(p) for c, p in partitions.items() if len(p) > 1}
    if not records:
        explain(did="read the topic back", saw="no records at all", expected="the published orders",
                nudge="are the orders delivered before publish_orders returns?")
    if spread:
        customer, parts = next(iter(spread.items()))
        explain(did=f"grouped the records of a {PARTITIONS}-partition topic by customer_id",
                saw=f"{len(spread)} of {len(partitions)} customers are split across partitions "
                f"(e.g. {customer} on partitions {parts})",
                expected="every customer's orders on exactly one partition",
                nudge="the default partitioner only sends records to the same partition when they share "
                "something. What do all of one customer's orders share?")


def test_customer_orders_keep_their_order(published):
    """Within its partition, each customer's orders appear in the order they were given."""
    orders, records = published
    if not records:
        explain(did="read the topic back", saw="no records at all", expected="the published orders",
                nudge="are the orders delivered before publish_orders returns?")
    expected = defaultdict(list)
    for o in orders:
        expected[o["customer_id"]].append(o["order_id"])
    actual = defaultdict(list)
    for record, order in sorted(_decoded(records), key=lambda ro: (ro[0].partition, ro[0].offset)):
        actual[order["customer_id"]].append((record.partition, order["order_id"]))
    for customer, want in expected.items():
        got = [oid for _, oid in actual[customer]]
        if len({p for p, _ in actual[customer]}) > 1:
            got_desc = "spread over partitions " + str(sorted({p for p, _ in actual[customer]}))
            explain(did=f"read {customer}'s orders partition by partition, in offset order",
                    saw=f"{got_desc}, so no consumer can rely on their order",
                    expected=f"one partition holding {want[:4]}… in that order",
                    nudge="Kafka orders records only within one partition.")
        if got != want:
            explain(did=f"read {customer}'s orders in offset order",
                    saw=f"{got[:6]}",
                    expected=f"{want[:6]} (the order publish_orders received them)",
                    nudge="does your code send the orders in the order it was given them?")


def test_key_is_the_customer_id(published):
    """Each record's key is its order's customer id."""
    _, records = published
    if not records:
        explain(did="read the topic back", saw="no records at all", expected="the published orders",
                nudge="are the orders delivered before publish_orders returns?")
    for record, order in _decoded(records):
        want = order["customer_id"].encode()
        if record.key != want:
            explain(did="compared each record's key with its order's customer_id",
                    saw=f"order {order['order_id']} has key {record.key!r}",
                    expected=f"key {want!r}",
                    nudge="the key is what the partitioner hashes, and what compaction and consumers see "
                    "as the record's identity.")
