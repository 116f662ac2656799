"""The external provider: a cluster someone else runs (compose file, CI service, laptop)."""

from __future__ import annotations

from grader.broker.base import Broker, Progress, metadata_answers
from grader.errors import InfraError


def connect_external(bootstrap_servers: str, progress: Progress, properties: dict | None = None,
                     source: str = "") -> Broker:
    progress(f"Using the Kafka cluster at {bootstrap_servers}…")
    if not metadata_answers(bootstrap_servers, timeout=10.0, properties=properties):
        if properties:  # reachable but refusing us is a different fix from nothing listening
            raise InfraError(
                f"The Kafka cluster at {bootstrap_servers} did not answer with the settings of {source}.",
                detail=_why(bootstrap_servers, properties),
                next_step=f"check the address and the security settings in {source} (security.protocol, "
                "sasl.mechanism, sasl.username/password), then run the same command again.")
        raise InfraError(
            f"No Kafka broker answered at {bootstrap_servers}.",
            next_step="start it (e.g. `docker compose up -d`) or drop --bootstrap-servers / "
            "KAFKA_BOOTSTRAP_SERVERS to let the grader start a local broker.",
        )
    return Broker(bootstrap_servers=bootstrap_servers, provider="external",
                  description=f"external cluster at {bootstrap_servers}", client_properties=dict(properties or {}))


def _why(bootstrap_servers: str, properties: dict) -> str:
    """librdkafka's own words (e.g. SASL authentication failed) from one more metadata request."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0, **properties,
                         "error_cb": lambda err: errors.append(err.str())})
    try:
        admin.list_topics(timeout=5)
    except KafkaException as exc:
        errors.append(str(exc.args[0].str() if exc.args else exc))
    return "\n".join(dict.fromkeys(errors[:3])) or "(the client reported no error)"
