"""kata-20: report under-replicated partitions.

Implement under_replicated_partitions() so that it tells, from the cluster's own metadata, which
partitions have replicas that are not in sync. Read README.md first.
"""

from confluent_kafka.admin import AdminClient


def under_replicated_partitions(bootstrap_servers: str, topics: list[str]) -> list[dict]:
    """The partitions of `topics` whose in-sync replica set is smaller than their replica set.

    bootstrap_servers: the cluster's addresses, e.g. "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094".
    topics: the names of the topics to look at (they exist).

    Returns one dict per under-replicated partition, sorted by (topic, partition):
        {"topic": str, "partition": int, "leader": int, "replicas": [int, ...], "isr": [int, ...]}
    and [] when every replica of every partition is in sync.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(timeout=10)  # noqa: F841 - you will need it
    # TODO: for each partition of each topic, compare its in-sync replicas with its replicas.
    return []
