"""kata-07: measure a consumer group's lag and tell what is wrong.

Implement measure_lag() (per-partition and total lag of a group, from the broker's numbers) and
diagnose() (two samples, one verdict). Read README.md first.
"""

import time

from confluent_kafka.admin import AdminClient


def measure_lag(bootstrap_servers: str, group_id: str, topic: str) -> dict:
    """The group's lag on `topic` right now, without joining or changing the group.

    Returns {"partitions": {p: {"committed": int | None, "start": int, "end": int, "lag": int}},
             "total": int}, with an entry for every partition of the topic.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    partitions = sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    result = {}
    for p in partitions:
        # TODO: the group's committed offset (None when it has none), the partition's log start
        #       offset and its high watermark, and the lag from those.
        result[p] = {"committed": None, "start": 0, "end": 0, "lag": 0}
    # TODO: how do the partitions' lags make the group's total?
    return {"partitions": result, "total": 0}


def diagnose(bootstrap_servers: str, group_id: str, topic: str, interval_s: float = 5.0) -> dict:
    """Two samples `interval_s` apart, the group's member count, and a status.

    Returns {"status": "no-commit" | "stalled" | "falling-behind" | "ok", "members": int,
             "uncommitted": [partitions], "first": <sample>, "second": <sample>}.
    """
    first = measure_lag(bootstrap_servers, group_id, topic)
    time.sleep(interval_s)
    second = measure_lag(bootstrap_servers, group_id, topic)
    # TODO: how many members does the group have now?
    # TODO: apply the README's rules, in order, to the two samples.
    return {"status": "ok", "members": 0, "uncommitted": [], "first": first, "second": second}
