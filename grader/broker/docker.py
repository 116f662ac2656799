"""The docker provider: apache/kafka in a container via testcontainers.

Used on laptops with a Docker engine. CI machines have no engine, so only the
parts that need none (daemon detection, container settings) are tested there.
"""

from __future__ import annotations

from grader import KAFKA_VERSION
from grader.broker.base import Broker, Progress
from grader.errors import InfraError

IMAGE = f"apache/kafka:{KAFKA_VERSION}"

# The same test-speed settings as the local broker (grader/broker/server.properties),
# in the image's env-var form. The image's own defaults already give RF 1 listeners.
CONTAINER_ENV = {
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS": "1000",
    "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    "KAFKA_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "200",
    "KAFKA_LOG_CLEANER_BACKOFF_MS": "500",
    "KAFKA_LOG_CLEANER_DEDUPE_BUFFER_SIZE": "2097152",
    "KAFKA_LOG_RETENTION_CHECK_INTERVAL_MS": "1000",
    "KAFKA_LOG_SEGMENT_DELETE_DELAY_MS": "1000",
}


def docker_available() -> bool:
    """True when a Docker daemon answers a ping (the CLI alone is not enough)."""
    try:
        import docker  # installed with testcontainers

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class DockerBroker(Broker):
    container = None

    def stop(self) -> None:
        if self.container is not None:
            self.container.stop()
            self.container = None


def start_docker(progress: Progress) -> DockerBroker:
    if not docker_available():
        raise InfraError("No Docker daemon answered, so the docker broker cannot start.",
                         next_step="start Docker, or use `--broker local` (needs Java 17+ and mvn).")
    from testcontainers.kafka import KafkaContainer

    progress(f"Starting {IMAGE} with testcontainers (the first run pulls the image)…")
    container = KafkaContainer(IMAGE).with_kraft()
    for key, value in CONTAINER_ENV.items():
        container = container.with_env(key, value)
    try:
        container.start()
    except Exception as exc:
        raise InfraError(f"The Kafka container did not start: {exc}",
                         next_step="check `docker ps -a` and the container log, or use `--broker local`.") from exc
    broker = DockerBroker(bootstrap_servers=container.get_bootstrap_server(), provider="docker",
                          description=f"{IMAGE} in Docker")
    broker.container = container
    return broker
