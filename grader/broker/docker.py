"""The docker provider: apache/kafka in a container via testcontainers.

Used on laptops with a Docker engine. CI machines have no engine, so only the
parts that need none (daemon detection, container settings) are tested there.
"""

from __future__ import annotations

from grader import KAFKA_VERSION
from grader.broker.base import Broker, Progress, metadata_answers
from grader.errors import InfraError

IMAGE = f"apache/kafka:{KAFKA_VERSION}"

# The image's own KRaft launcher reads KAFKA_* variables (`.`→`_`). The same test-speed
# settings as the local broker (grader/broker/server.properties) and docker-compose.yml;
# tests/test_broker_docker.py keeps the three in step.
def container_env(host_port: int) -> dict[str, str]:
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        # Clients outside the container reach it through the host port mapped to 9092.
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{host_port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS": "1000",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "200",
        "KAFKA_LOG_CLEANER_BACKOFF_MS": "500",
        "KAFKA_LOG_CLEANER_DEDUPE_BUFFER_SIZE": "2097152",
        "KAFKA_LOG_RETENTION_CHECK_INTERVAL_MS": "1000",
        "KAFKA_LOG_SEGMENT_DELETE_DELAY_MS": "1000",
        "KAFKA_LOG_INITIAL_TASK_DELAY_MS": "100",
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
    # testcontainers' KafkaContainer drives Confluent images; apache/kafka needs only env
    # vars and a fixed port mapping (the advertised port must be known before start).
    from testcontainers.core.container import DockerContainer

    from grader.broker.addresses import free_port
    from grader.broker.base import wait_until

    port = free_port()
    progress(f"Starting {IMAGE} with testcontainers (the first run pulls the image)…")
    container = DockerContainer(IMAGE).with_bind_ports(9092, port)
    for key, value in container_env(port).items():
        container = container.with_env(key, value)
    broker = DockerBroker(bootstrap_servers=f"127.0.0.1:{port}", provider="docker", description=f"{IMAGE} in Docker")
    try:
        container.start()
        broker.container = container
        if not wait_until(lambda: metadata_answers(broker.bootstrap_servers, 2.0), timeout=90):
            raise InfraError("The Kafka container started but did not answer within 90s.",
                             next_step="check `docker logs` of the apache/kafka container, or use `--broker local`.")
    except InfraError:
        broker.stop()
        raise
    except Exception as exc:
        broker.stop()
        raise InfraError(f"The Kafka container did not start: {exc}",
                         next_step="check `docker ps -a` and the container log, or use `--broker local`.") from exc
    return broker
