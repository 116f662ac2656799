"""The external provider: a cluster someone else runs (compose file, CI service, laptop)."""

from __future__ import annotations

from grader.broker.base import Broker, Progress, metadata_answers
from grader.errors import InfraError


def connect_external(bootstrap_servers: str, progress: Progress) -> Broker:
    progress(f"Using the Kafka cluster at {bootstrap_servers}…")
    if not metadata_answers(bootstrap_servers, timeout=10.0):
        raise InfraError(
            f"No Kafka broker answered at {bootstrap_servers}.",
            next_step="start it (e.g. `docker compose up -d`) or drop --bootstrap-servers / "
            "KAFKA_BOOTSTRAP_SERVERS to let the grader start a local broker.",
        )
    return Broker(bootstrap_servers=bootstrap_servers, provider="external",
                  description=f"external cluster at {bootstrap_servers}")
