"""kata-23: a Kafka Connect file sink that keeps running past bad records (reference solution).

sink_config() is the connector's configuration, register() hands it to a Connect worker,
dead_letters() reads the dead-letter topic back as one summary per dead record.
"""

import json
import time
import urllib.error
import urllib.request
import uuid

from confluent_kafka import Consumer

FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
JSON = "org.apache.kafka.connect.json.JsonConverter"
STRING = "org.apache.kafka.connect.storage.StringConverter"
HEADER = "__connect.errors."


def sink_config(topic: str, out_file: str, dlq_topic: str) -> dict[str, str]:
    """The FileStreamSinkConnector's configuration: `topic` into `out_file`, bad records into `dlq_topic`."""
    config = {
        "connector.class": FILE_SINK,
        # One task: a file has one writer, and one task keeps each partition's records in order in it.
        "tasks.max": 1,
        "topics": topic,
        "file": out_file,
        # Converters named here, not left to the worker's defaults (another worker may differ).
        # Keys are plain strings, not JSON: this worker's default (JsonConverter) fails on every one.
        "key.converter": STRING,
        # Values are JSON envelopes {"schema": ..., "payload": ...}: the converter must expect them,
        # so a value without its schema, or one that breaks it, fails conversion (and is dead-lettered).
        "value.converter": JSON,
        "value.converter.schemas.enable": True,
        # Without this ("none", the default) the first bad record fails the task and the sink stops.
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": dlq_topic,
        # Connect creates the DLQ itself with this replication factor (default 3): our test cluster
        # has one broker, so 3 fails the task at start.
        "errors.deadletterqueue.topic.replication.factor": 1,
        # __connect.errors.* headers: where the record came from and which stage failed with what.
        "errors.deadletterqueue.context.headers.enable": True,
        # Transient (retriable) failures are retried for five minutes with backoff up to 5 s between
        # attempts, instead of dead-lettering a record that would have worked a second later.
        "errors.retry.timeout": 5 * 60 * 1000,
        "errors.retry.delay.max.ms": 5000,
        # Every tolerated failure also goes to the worker's log, with the record's coordinates.
        "errors.log.enable": True,
        "errors.log.include.messages": True,
    }
    # Connect's REST API takes strings; booleans in Connect's spelling.
    return {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in config.items()}


def register(connect_url: str, name: str, config: dict[str, str]) -> dict:
    """Create or update the connector `name` with `config`; Connect's answer, or RuntimeError."""
    # PUT /connectors/NAME/config creates the connector or updates it: running it twice is safe,
    # where POST /connectors answers 409 Conflict for a name that exists.
    request = urllib.request.Request(f"{connect_url.rstrip('/')}/connectors/{name}/config",
                                     data=json.dumps(config).encode(), method="PUT",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        # Connect explains a rejected config in its JSON body: pass that on, it names the setting.
        body = exc.read().decode(errors="replace")
        message = json.loads(body).get("message", body) if body.startswith("{") else body
        raise RuntimeError(f"Connect refused connector {name!r}: HTTP {exc.code}: {message}") from None


def _header(headers: dict[str, bytes], name: str) -> str | None:
    value = headers.get(HEADER + name)
    return None if value is None else value.decode("utf-8", "replace")


def summarize(msg) -> dict:
    """One dead record: its own key and value, and what the __connect.errors.* headers say."""
    headers = dict(msg.headers() or [])
    partition, offset = _header(headers, "partition"), _header(headers, "offset")
    return {
        "key": msg.key(),
        "value": msg.value(),
        "topic": _header(headers, "topic"),
        "partition": None if partition is None else int(partition),
        "offset": None if offset is None else int(offset),
        "stage": _header(headers, "stage"),
        "class_name": _header(headers, "class.name"),
        "exception": _header(headers, "exception.class.name"),
        "message": _header(headers, "exception.message"),
    }


def dead_letters(bootstrap_servers: str, dlq_topic: str, count: int, timeout_s: float) -> list[dict]:
    """The first `count` records of `dlq_topic` summarised, or as many as arrived within timeout_s."""
    # A group of its own and no commits: reading the DLQ must not move anybody's offsets.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"dlq-reader-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([dlq_topic])
    found: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)  # at most half a second past the deadline
            if msg is None or msg.error():
                continue
            found.append(summarize(msg))
    finally:
        consumer.close()
    return found
