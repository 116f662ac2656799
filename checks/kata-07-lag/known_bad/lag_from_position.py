"""Known-bad for kata-07: lag measured from a consumer's own position instead of the group's commits."""

import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient


def measure_lag(bootstrap_servers: str, group_id: str, topic: str) -> dict:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    partitions = sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    # "A consumer with the group's id knows where the group is": it starts from the group's commits,
    # reads up to the end, and position() says where it got to.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", "log_level": 0})
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and consumer.poll(0.5) is not None:
        pass
    positions = {tp.partition: tp.offset for tp in consumer.position(consumer.assignment())}
    result = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        done = positions.get(p, -1001)
        done = done if done >= 0 else None
        result[p] = {"committed": done, "start": low, "end": high,
                     "lag": high - (done if done is not None else low)}
    consumer.close()
    return {"partitions": result, "total": sum(r["lag"] for r in result.values())}


def diagnose(bootstrap_servers: str, group_id: str, topic: str, interval_s: float = 5.0) -> dict:
    first = measure_lag(bootstrap_servers, group_id, topic)
    time.sleep(interval_s)
    second = measure_lag(bootstrap_servers, group_id, topic)
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    members = len(admin.describe_consumer_groups([group_id])[group_id].result().members)
    before = {p: r["committed"] for p, r in first["partitions"].items()}
    after = {p: r["committed"] for p, r in second["partitions"].items()}
    uncommitted = sorted(p for p, offset in after.items() if offset is None)
    if len(uncommitted) == len(after):
        status = "no-commit"
    elif second["total"] > 0 and before == after:
        status = "stalled"
    elif second["total"] > first["total"]:
        status = "falling-behind"
    else:
        status = "ok"
    return {"status": status, "members": members, "uncommitted": uncommitted, "first": first, "second": second}
