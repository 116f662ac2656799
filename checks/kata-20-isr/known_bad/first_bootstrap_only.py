"""Known-bad for kata-20: connects to the first bootstrap address only, so the health report fails
exactly when that broker is the one that is down."""

from confluent_kafka.admin import AdminClient


def under_replicated_partitions(bootstrap_servers: str, topics: list[str]) -> list[dict]:
    first = bootstrap_servers.split(",")[0]
    admin = AdminClient({"bootstrap.servers": first})
    metadata = admin.list_topics(timeout=10)
    report = []
    for name in sorted(topics):
        for partition in sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id):
            if len(partition.isrs) < len(partition.replicas):
                report.append({"topic": name, "partition": partition.id, "leader": partition.leader,
                               "replicas": list(partition.replicas), "isr": list(partition.isrs)})
    return report
