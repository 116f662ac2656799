"""A Kafka Connect distributed worker with the Debezium PostgreSQL and file connectors.

The worker's jars (connect-runtime at the broker's version, connect-file, connect-json) and
Debezium's plugin archive come from Maven Central through grader/broker/connect-pom.xml,
into the same cache as the broker's jars. The archive is unpacked onto the worker's
plugin.path, so Debezium's own dependencies stay in their plugin class loader.
Ready = the REST API lists the connector plugins (the plugin scan is the slow part).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar

from grader import KAFKA_VERSION
from grader import proc as proc_guard
from grader.broker import jars
from grader.broker.addresses import free_port
from grader.broker.base import Progress
from grader.broker.local import JVM_FLAGS
from grader.errors import InfraError
from grader.services.server import ServerProcess

START_TIMEOUT_S = 120.0
DEBEZIUM_ARCHIVE = "debezium-connector-postgres-*-plugin.tar.gz"
DEBEZIUM_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
# The plugin scan reads service manifests only (no class-by-class reflection over ~200 jars);
# Kafka's default is hybrid_warn. benchmarks/services_start.py measures both.
PLUGIN_DISCOVERY = "service_load"


def lib_dir() -> Path:
    return jars.cache_root() / f"kafka-{KAFKA_VERSION}" / "connect-lib"


def plugin_dir() -> Path:
    return jars.cache_root() / f"kafka-{KAFKA_VERSION}" / "connect-plugins"


def ensure_jars(progress: Progress) -> tuple[Path, Path]:
    """(worker jar directory, plugin.path), resolved and unpacked once."""
    lib = lib_dir()
    if not jars.cache_complete(lib, required="connect-runtime-"):
        jars.resolve_with_mvn(lib, progress, pom="connect-pom.xml", what="Kafka Connect and Debezium",
                              size="about 60 MB")
    plugins = plugin_dir()
    if not (plugins / "debezium-connector-postgres").is_dir():
        archives = sorted(lib.glob(DEBEZIUM_ARCHIVE))
        if not archives:
            raise InfraError(f"The Debezium plugin archive is missing from {lib}.",
                             next_step=f"delete {lib} so the jars are fetched anew, then run again.")
        partial = plugins.with_name("connect-plugins.partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archives[-1]) as tar:
            tar.extractall(partial, filter="data")
        shutil.rmtree(plugins, ignore_errors=True)
        partial.rename(plugins)  # atomic: a half-unpacked plugin never looks complete
    return lib, plugins


@dataclass
class ConnectWorker(ServerProcess):
    group: str = ""
    LOG_NAME: ClassVar[str] = "connect.log"
    WHAT: ClassVar[str] = "Connect"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # the JVM and its keeper (which waits for it)
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            proc_guard.untrack(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


def worker_properties(bootstrap_servers: str, port: int, group: str, plugins: Path, workdir: Path) -> str:
    # Internal topics are per worker group (a run never reads another run's configs or offsets)
    # and RF 1: the test broker has one node.
    return "\n".join([
        f"bootstrap.servers={bootstrap_servers}",
        f"group.id={group}",
        f"config.storage.topic={group}-configs", f"offset.storage.topic={group}-offsets",
        f"status.storage.topic={group}-status",
        "config.storage.replication.factor=1", "offset.storage.replication.factor=1",
        "status.storage.replication.factor=1", "offset.storage.partitions=1", "status.storage.partitions=1",
        "key.converter=org.apache.kafka.connect.json.JsonConverter",
        "value.converter=org.apache.kafka.connect.json.JsonConverter",
        "offset.flush.interval.ms=500",
        f"listeners=http://127.0.0.1:{port}", "rest.advertised.host.name=127.0.0.1",
        f"rest.advertised.port={port}",
        f"plugin.path={plugins}",
        f"plugin.discovery={PLUGIN_DISCOVERY}",
        "scheduled.rebalance.max.delay.ms=0",
        "",
    ])


def start_connect(bootstrap_servers: str, progress: Progress) -> ConnectWorker:
    lib, plugins = ensure_jars(progress)
    workdir = Path(tempfile.mkdtemp(prefix="kk-connect-"))
    worker = ConnectWorker(port=free_port(), workdir=workdir, group=f"kk-connect-{uuid.uuid4().hex[:8]}")
    props = workdir / "worker.properties"
    props.write_text(worker_properties(bootstrap_servers, worker.port, worker.group, plugins, workdir))
    log4j = resources.files("grader.broker").joinpath("log4j2.properties")
    cmd = [jars.java_executable(), *JVM_FLAGS, f"-Dlog4j2.configurationFile={log4j}",
           "-cp", f"{lib}/*", "org.apache.kafka.connect.cli.ConnectDistributed", str(props)]
    progress(f"Starting a Kafka Connect worker on 127.0.0.1:{worker.port}…")
    with worker.log_path.open("wb") as log:
        worker.process = proc_guard.track(subprocess.Popen(
            proc_guard.kept(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True))
    try:
        wait_ready(worker)
    except BaseException:
        worker.stop()
        raise
    return worker


def plugins_listed(url: str, timeout: float = 2.0) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{url}/connector-plugins", timeout=timeout) as resp:
            return [p["class"] for p in json.load(resp)]
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_ready(worker: ConnectWorker) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not worker.alive():
            raise InfraError("The Kafka Connect worker exited while starting.", detail=worker.log_tail(),
                             next_step="read the log above; then run the same command again.")
        listed = plugins_listed(worker.url)
        if listed is not None:
            if DEBEZIUM_CLASS not in listed:
                raise InfraError("The Kafka Connect worker started without the Debezium PostgreSQL connector.",
                                 detail=f"Plugins listed: {', '.join(listed)}",
                                 next_step=f"delete {plugin_dir()} so it is unpacked anew, then run again.")
            return
        time.sleep(0.2)
    raise InfraError(f"The Kafka Connect worker did not answer on {worker.url} within {START_TIMEOUT_S:.0f} s.",
                     detail=worker.log_tail(), next_step="the machine may be overloaded; run the command again.")


if __name__ == "__main__":  # `python -m grader.services.connect` pre-fetches the jars (used by .ci/run)
    import sys

    print(ensure_jars(lambda m: print(m, file=sys.stderr))[1])
