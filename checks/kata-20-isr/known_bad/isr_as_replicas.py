"""Known-bad for kata-20: finds the right partitions but reports the ISR as the replica set, so the
report hides which replica is missing."""

from confluent_kafka.admin import AdminClient


def under_replicated_partitions(bootstrap_servers: str, topics: list[str]) -> list[dict]:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    report = []
    for name in sorted(topics):
        for partition in sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id):
            if len(partition.isrs) < len(partition.replicas):
                report.append({"topic": name, "partition": partition.id, "leader": partition.leader,
                               "replicas": list(partition.isrs), "isr": list(partition.isrs)})
    return report
