"""Start-up speed for the local broker, prepared once per jar set and JDK.

- A storage template: `StorageTool format` costs a JVM launch (~0.5 s); a formatted
  directory per node id is kept in the cache and copied for every new broker.
- A class-data-sharing archive (AppCDS, as Kafka's own Docker image uses, KIP-975):
  classes loaded by a real broker start are dumped once and mapped on later starts.
Both are optional: when missing or unusable the broker starts the plain way.
Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from grader.broker import jars
from grader.broker.base import Progress, metadata_answers

TEMPLATE_CLUSTER_ID_FILE = "cluster-id"


def fast_start_enabled() -> bool:
    """KAFKA_KATAS_FAST_START=0 turns both off (benchmarks use it to measure the difference)."""
    return os.environ.get("KAFKA_KATAS_FAST_START", "1") != "0"


_deferred = False


def defer_archive() -> None:
    """`grade KATA` asks for this: on a first run, start the broker without a class-data archive and
    build it after the verdict is shown (build_archive_if_missing), so the first verdict does not wait
    ~10 s for an optimisation of later runs (issue 15, P6). Everything else builds it before starting."""
    global _deferred
    _deferred = True


def archive_deferred() -> bool:
    return _deferred


def _cache_dir() -> Path:
    return jars.cache_root() / f"kafka-{jars.KAFKA_VERSION}"


def fingerprint(java: str, classpath: str) -> str:
    """Archives are only valid for one JDK build and one classpath."""
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    libs = Path(classpath.rstrip("*").rstrip("/"))
    names = sorted(p.name for p in libs.glob("*.jar")) if libs.is_dir() else [classpath]
    return hashlib.sha1((version + "\n".join(names) + str(libs)).encode()).hexdigest()[:12]


def cds_archive(java: str, classpath: str) -> Path:
    return _cache_dir() / "cds" / f"kafka-{fingerprint(java, classpath)}.jsa"


def cds_flags(archive: Path) -> list[str]:
    if archive.is_file() and fast_start_enabled():
        # -Xshare:auto (the default) falls back silently if the archive cannot be mapped.
        return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    return []


def template_dir(node_id: int) -> Path:
    return _cache_dir() / "storage-template" / f"node-{node_id}"


def template_cluster_id() -> str | None:
    path = _cache_dir() / "storage-template" / TEMPLATE_CLUSTER_ID_FILE
    cluster_id = path.read_text().strip() if path.is_file() else None
    # An id starting with "-" (written by an older grader) can never be formatted: make a new one.
    return cluster_id if cluster_id and not cluster_id.startswith("-") else None


def ensure_template(format_node, node_id: int, cluster_id: str) -> bool:
    """Format a template for node_id once (format_node(dir, cluster_id) does the formatting).

    Returns True when a template with this cluster id is ready to copy.
    """
    target = template_dir(node_id)
    if (target / "meta.properties").is_file():
        return template_cluster_id() == cluster_id
    target.parent.mkdir(parents=True, exist_ok=True)
    id_file = target.parent / TEMPLATE_CLUSTER_ID_FILE
    if not id_file.exists() or template_cluster_id() is None:
        tmp_id = id_file.with_suffix(f".{os.getpid()}")
        tmp_id.write_text(cluster_id)
        os.replace(tmp_id, id_file)
    cluster_id = id_file.read_text().strip()
    staging = Path(tempfile.mkdtemp(prefix=f"node-{node_id}-", dir=target.parent))
    try:
        format_node(staging, cluster_id)
        os.rename(staging, target)  # atomic; loses the race gracefully below
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return (target / "meta.properties").is_file()


def copy_template(node_id: int, data_dir: Path) -> None:
    shutil.copytree(template_dir(node_id), data_dir, dirs_exist_ok=True)


def build_cds_archive(start_broker, progress: Progress, archive: Path) -> bool:
    """Start one broker with -XX:ArchiveClassesAtExit, exercise it, stop it cleanly.

    start_broker(extra_jvm_flags) -> (process, bootstrap_servers, cleanup).
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(f".{os.getpid()}.partial")
    progress("Preparing a class-data archive so later broker starts are faster (once, ~10 s)…")
    process, bootstrap, cleanup = start_broker([f"-XX:ArchiveClassesAtExit={partial}", "-Xlog:cds=off",
                                                "-Xlog:cds+dynamic=off"])
    try:
        deadline = time.monotonic() + 60
        while not metadata_answers(bootstrap, timeout=1.0):
            if process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        _exercise(bootstrap)
        # The archive is written at a clean JVM exit: SIGTERM runs Kafka's shutdown hook.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            return False
        if partial.is_file() and partial.stat().st_size > 0:
            os.replace(partial, archive)
            return True
        return False
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        partial.unlink(missing_ok=True)
        cleanup()


def _exercise(bootstrap: str) -> None:
    """Touch the broker's topic, produce, group and transaction paths so their classes are archived."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    quiet = {"bootstrap.servers": bootstrap, "log_level": 0}
    admin = AdminClient(quiet)
    admin.create_topics([NewTopic("warmup", 2, 1)])["warmup"].result(timeout=30)
    producer = Producer({**quiet, "transactional.id": "warmup"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("warmup", key=b"k", value=b"v")
    producer.commit_transaction(30)
    consumer = Consumer({**quiet, "group.id": "warmup", "auto.offset.reset": "earliest"})
    consumer.subscribe(["warmup"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            consumer.commit(msg, asynchronous=False)
            break
    consumer.close()
