"""Known-bad for kata-20: takes "the leader is not the preferred (first) replica" for under-replication;
after a failure the leaders stay moved although every replica is back in sync."""

from confluent_kafka.admin import AdminClient


def under_replicated_partitions(bootstrap_servers: str, topics: list[str]) -> list[dict]:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    report = []
    for name in sorted(topics):
        for partition in sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id):
            if len(partition.isrs) < len(partition.replicas) or partition.leader != partition.replicas[0]:
                report.append({"topic": name, "partition": partition.id, "leader": partition.leader,
                               "replicas": list(partition.replicas), "isr": list(partition.isrs)})
    return report
