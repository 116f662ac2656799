"""kata-07 reference solution: lag from committed offsets and end offsets, and a two-sample diagnosis."""

import time

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

TIMEOUT_S = 15


def _admin(bootstrap_servers: str) -> AdminClient:
    # An AdminClient only asks questions. A Consumer with the group's id that subscribed (or polled
    # with auto-commit on) would join the group it is measuring, trigger a rebalance, or even commit.
    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})


def _partitions(admin: AdminClient, topic: str) -> list[TopicPartition]:
    metadata = admin.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
    if metadata.error is not None:
        # A topic that does not exist has no partitions: reporting "no lag" would hide a typo.
        raise RuntimeError(f"cannot describe topic {topic}: {metadata.error}")
    return [TopicPartition(topic, p) for p in sorted(metadata.partitions)]


def measure_lag(bootstrap_servers: str, group_id: str, topic: str) -> dict:
    admin = _admin(bootstrap_servers)
    partitions = _partitions(admin, topic)

    # Committed offsets first, end offsets second: the group can only commit what already exists,
    # so reading in this order never shows a committed offset beyond the end (no negative lag).
    # The committed offset, not any consumer's position, is where the group resumes after a
    # restart or a rebalance: it is the only honest measure of "not yet done".
    request = [ConsumerGroupTopicPartitions(group_id, partitions)]
    answer = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT_S)[group_id].result()
    committed = {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in answer.topic_partitions}

    def offsets(spec: OffsetSpec) -> dict[int, int]:
        futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=TIMEOUT_S)
        return {tp.partition: future.result().offset for tp, future in futures.items()}

    # The high watermark (the next offset to be written) and the log start (older records are
    # deleted already).
    ends, starts = offsets(OffsetSpec.latest()), offsets(OffsetSpec.earliest())

    result = {}
    for tp in partitions:
        p = tp.partition
        done = committed.get(p)
        # No commit yet: the group has read nothing of this partition that it would keep, so
        # everything still in the log is ahead of it (it starts from the earliest offset).
        # Treating "no commit" (-1001) as offset 0 overstates the lag once retention has deleted
        # the oldest records; skipping the partition hides it altogether.
        lag = ends[p] - (done if done is not None else starts[p])
        result[p] = {"committed": done, "start": starts[p], "end": ends[p], "lag": lag}
    # The group has to work through every partition: the total is a sum, not the worst partition.
    return {"partitions": result, "total": sum(r["lag"] for r in result.values())}


def _members(bootstrap_servers: str, group_id: str) -> int:
    admin = _admin(bootstrap_servers)
    description = admin.describe_consumer_groups([group_id], request_timeout=TIMEOUT_S)[group_id].result()
    return len(description.members)  # an empty, dead or unknown group has none


def _committed(sample: dict) -> dict:
    return {p: r["committed"] for p, r in sample["partitions"].items()}


def diagnose(bootstrap_servers: str, group_id: str, topic: str, interval_s: float = 5.0) -> dict:
    first = measure_lag(bootstrap_servers, group_id, topic)
    # One sample is a number, two samples are a trend: only the change over time separates a stalled
    # group from a slow one, or a growing backlog from one being worked off.
    time.sleep(interval_s)
    second = measure_lag(bootstrap_servers, group_id, topic)
    uncommitted = sorted(p for p, r in second["partitions"].items() if r["committed"] is None)

    if len(uncommitted) == len(second["partitions"]):
        status = "no-commit"
    elif second["total"] > 0 and _committed(first) == _committed(second):
        # Nobody moved the group forward. Members or not: a member that is alive but stuck (a hung
        # handler, an endless retry) looks exactly like an abandoned group from the offsets' side.
        status = "stalled"
    elif second["total"] > first["total"]:
        status = "falling-behind"  # it commits, but the producers write faster than it reads
    else:
        status = "ok"
    # The members the group has now, after the second sample: the count belongs with it.
    return {"status": status, "members": _members(bootstrap_servers, group_id), "uncommitted": uncommitted,
            "first": first, "second": second}
