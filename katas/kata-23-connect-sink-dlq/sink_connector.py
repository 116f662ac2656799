"""kata-23: a Kafka Connect file sink that keeps running past bad records.

Implement sink_config() (the connector's configuration), register() (hand it to a Connect
worker) and dead_letters() (read the dead-letter topic back). Read README.md first.
"""

import json  # noqa: F401 (register() sends JSON)
import urllib.error  # noqa: F401
import urllib.request  # noqa: F401

from confluent_kafka import Consumer  # noqa: F401 (dead_letters() reads the DLQ)

FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


def sink_config(topic: str, out_file: str, dlq_topic: str) -> dict[str, str]:
    """The FileStreamSinkConnector's configuration: `topic` into `out_file`, bad records into `dlq_topic`.

    Every key and value is a string (Connect's REST API takes strings: "1", "true").
    """
    # TODO: this sink stops for good at the first record it cannot convert. Add the converters
    #       that match the data, error tolerance, a dead-letter topic with context headers
    #       (replication factor for this one-broker cluster), retries and error logging.
    return {
        "connector.class": FILE_SINK,
        "tasks.max": "1",
        "topics": topic,
        "file": out_file,
    }


def register(connect_url: str, name: str, config: dict[str, str]) -> dict:
    """Create the connector `name` with `config`, or update it if it exists; return Connect's answer.

    Raise RuntimeError holding Connect's own error message when it refuses the config.
    """
    # TODO: one endpoint of Connect's REST API creates or updates a connector by name.
    raise NotImplementedError("register() is still the stub: send the config to Connect's REST API")


def dead_letters(bootstrap_servers: str, dlq_topic: str, count: int, timeout_s: float) -> list[dict]:
    """The first `count` records of `dlq_topic`, each summarised (README), or those that came within timeout_s."""
    # TODO: read the DLQ from its start and turn each record's __connect.errors.* headers into a summary.
    raise NotImplementedError("dead_letters() is still the stub: read the DLQ from its start")
