"""kata-13 reference solution: tumbling windows on event time with a grace period, and a
stream-table join against a table built from the latest value per key."""

import json
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def read_to_end(bootstrap_servers: str, topic: str):
    """Yield every record of `topic` from offset 0 up to the end offsets seen at the start.

    Partitions are read one after the other, so records come in log order within each."""
    # A throwaway group id (librdkafka needs one); with assign() nothing joins or commits.
    # fetch.wait.max.ms: a fetch of a caught-up partition returns after 50 ms instead of 500, so moving
    # on to the next partition does not wait for it.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"streams-{uuid.uuid4()}",
                         "fetch.wait.max.ms": 50})
    try:
        for p in sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions):
            end = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            if end == 0:
                continue
            consumer.assign([TopicPartition(topic, p, 0)])
            # The record at end - 1 always exists: the log cleaner never touches the active segment.
            while True:
                msg = consumer.poll(0.5)
                if msg is not None:  # None: nothing arrived within 0.5 s, poll again
                    if msg.error():
                        raise KafkaException(msg.error())
                    yield msg
                    if msg.offset() >= end - 1:
                        break
    finally:
        consumer.close()


def count_windows(bootstrap_servers: str, input_topic: str, output_topic: str, window_ms: int,
                  grace_ms: int) -> int:
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    failures = []

    def on_delivery(err, msg):
        # Served by poll()/flush(): the only place a failed delivery becomes visible.
        if err is not None:
            failures.append(err)

    open_windows: dict[tuple[str, int], int] = {}  # (key, window start) -> count
    stream_time = None
    late = 0

    def emit(key: str, start: int, count: int) -> None:
        end = start + window_ms
        # No poll() per record needed for this bounded output: flush() at the end serves every
        # delivery report (a long-running processor would poll(0) as it goes).
        producer.produce(output_topic, key=key.encode("utf-8"), on_delivery=on_delivery,
                         value=json.dumps({"key": key, "window_start": start, "window_end": end,
                                           "count": count}).encode("utf-8"))

    for msg in read_to_end(bootstrap_servers, input_topic):
        # Event time: when it happened (the record's timestamp), not when we read it. A replay
        # next week must put each event in the same window as today.
        ts, key = msg.timestamp()[1], msg.key().decode("utf-8")
        start = ts - ts % window_ms
        # Stream time only moves forward: an out-of-order event does not turn the clock back.
        stream_time = ts if stream_time is None else max(stream_time, ts)
        if stream_time >= start + window_ms + grace_ms:
            # Its window has closed (and may already be published): counting it now would
            # change a result consumers already have. Drop it, but say how many we dropped.
            late += 1
            continue
        open_windows[(key, start)] = open_windows.get((key, start), 0) + 1
        # Publish every window whose end + grace the stream time has passed: no event
        # arriving later can be counted in it any more.
        for (k, s) in [w for w in open_windows if stream_time >= w[1] + window_ms + grace_ms]:
            emit(k, s, open_windows.pop((k, s)))

    # End of input: nothing more can arrive in this run, so the remaining windows are final.
    for (k, s), count in sorted(open_windows.items(), key=lambda item: item[0][1]):
        emit(k, s, count)
    remaining = producer.flush(30)
    if remaining or failures:
        raise KafkaException(f"{remaining} window results undelivered, {len(failures)} failed: {failures[:3]}")
    return late


def build_table(bootstrap_servers: str, customers_topic: str) -> dict[str, dict]:
    """The customers table: customer id -> the customer's current value (a dict)."""
    # Replay the changelog in order, so a later value overwrites an earlier one and a tombstone
    # (value None) deletes the key. Compaction may or may not have removed old values yet;
    # replaying in order gives the same table either way.
    table: dict[str, dict] = {}
    for msg in read_to_end(bootstrap_servers, customers_topic):
        key = msg.key().decode("utf-8")
        if msg.value() is None:
            table.pop(key, None)
        else:
            table[key] = json.loads(msg.value())
    return table


def enrich(order: dict, table: dict[str, dict]) -> dict:
    """The order with one more field, "customer": its customer's value in `table`, or None."""
    # A lookup, not a search through history: the table holds one current value per key.
    return {**order, "customer": table.get(order["customer_id"])}


def enrich_orders(bootstrap_servers: str, orders_topic: str, customers_topic: str, output_topic: str) -> None:
    table = build_table(bootstrap_servers, customers_topic)
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    for msg in read_to_end(bootstrap_servers, orders_topic):
        enriched = enrich(json.loads(msg.value()), table)
        producer.produce(output_topic, key=msg.key(), value=json.dumps(enriched).encode("utf-8"),
                         on_delivery=on_delivery)
    remaining = producer.flush(30)
    if remaining or failures:
        raise KafkaException(f"{remaining} enriched orders undelivered, {len(failures)} failed: {failures[:3]}")
