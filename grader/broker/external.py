"""The external provider: a cluster someone else runs (compose file, CI service, laptop)."""

from __future__ import annotations

import re
import time

from grader.broker.base import Broker, Progress, metadata_answers
from grader.errors import InfraError


def connect_external(bootstrap_servers: str, progress: Progress, properties: dict | None = None,
                     source: str = "") -> Broker:
    progress(f"Using the Kafka cluster at {bootstrap_servers}…")
    if properties:  # reachable but refusing us is a different fix from nothing listening
        refused = _refusal(bootstrap_servers, properties, timeout=10.0)
        if refused is not None:
            raise InfraError(
                f"The Kafka cluster at {bootstrap_servers} did not answer with the settings of {source}.",
                detail=refused,
                next_step=f"check the address and the security settings in {source} (security.protocol, "
                "sasl.mechanism, sasl.username/password), then run the same command again.")
    elif not metadata_answers(bootstrap_servers, timeout=10.0):
        raise InfraError(
            f"No Kafka broker answered at {bootstrap_servers}.",
            next_step="start it (e.g. `docker compose up -d`) or drop --bootstrap-servers / "
            "KAFKA_BOOTSTRAP_SERVERS to let the grader start a local broker.",
        )
    return Broker(bootstrap_servers=bootstrap_servers, provider="external",
                  description=f"external cluster at {bootstrap_servers}", client_properties=dict(properties or {}))


def _refusal(bootstrap_servers: str, properties: dict, timeout: float) -> str | None:
    """None when the cluster answers a metadata request with these settings; else librdkafka's own words
    (e.g. "SASL authentication error: … invalid credentials"), as soon as it says them."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0, **properties,
                         "error_cb": lambda err: errors.append(err.str())})
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            if admin.list_topics(timeout=1.0).brokers:
                return None
        except KafkaException as exc:
            last = exc.args[0].str() if exc.args else str(exc)
        admin.poll(0.2)  # error_cb is served by poll(): an authentication failure comes this way
        if any("auth" in e.lower() or "ssl" in e.lower() for e in errors):
            break
    else:
        errors.append(last)
    # One line per distinct reason ("after 313ms" differs between retries of the same one).
    reasons = dict.fromkeys(re.sub(r" \(after \d+ms[^)]*\)", "", e) for e in errors if "auth" in e.lower()
                            or "ssl" in e.lower()) or dict.fromkeys(errors)
    return "\n".join(list(reasons)[:3]) or "(the client reported no error)"
