"""Known-bad for kata-20: reports only partitions whose ISR is below the topic's min.insync.replicas,
i.e. the ones that already refuse acks=all writes, not the ones that lost a replica."""

from confluent_kafka.admin import AdminClient, ConfigResource


def under_replicated_partitions(bootstrap_servers: str, topics: list[str]) -> list[dict]:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    configs = admin.describe_configs([ConfigResource("topic", t) for t in topics])
    report = []
    for resource, future in configs.items():
        name = resource.name
        min_isr = int(future.result(timeout=10)["min.insync.replicas"].value)
        for partition in sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id):
            if len(partition.isrs) < min_isr:
                report.append({"topic": name, "partition": partition.id, "leader": partition.leader,
                               "replicas": list(partition.replicas), "isr": list(partition.isrs)})
    return sorted(report, key=lambda r: (r["topic"], r["partition"]))
