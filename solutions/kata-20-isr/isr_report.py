"""kata-20 reference solution: under-replicated partitions from fresh cluster metadata."""

from confluent_kafka.admin import AdminClient


def under_replicated_partitions(bootstrap_servers: str, topics: list[str]) -> list[dict]:
    # All the addresses, not just one: the client bootstraps from whichever answers, so a report
    # about a broker being down still works while that broker is down.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    # A new client asks a broker for metadata now; every broker's metadata follows the controller's
    # log, so leader, replicas and ISR come from one consistent view.
    metadata = admin.list_topics(timeout=10)
    report = []
    for name in sorted(topics):  # the topics exist (the contract says so): a missing one raises KeyError
        # Every partition, including one with no leader (its metadata carries an error, and it is the
        # most under-replicated of all).
        for partition in sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id):
            # Under-replicated: a replica that exists but is not caught up. That is about the ISR versus
            # the assignment, not about min.insync.replicas (below it, acks=all writes stop: worse) and not
            # about who leads (a moved leader with every replica in sync is only unbalanced).
            if len(partition.isrs) < len(partition.replicas):
                report.append({"topic": name, "partition": partition.id, "leader": partition.leader,
                               "replicas": list(partition.replicas), "isr": list(partition.isrs)})
    return report
