"""Benchmark: broker cold start and `grade` wall time (issue: Foundation; Performance P1, P2, P4).

Run from the repository root:  python benchmarks/broker_start.py [--runs 5] [--markdown]

Broker cold start = format storage + spawn the JVM + wait until an admin metadata
request answers. Measured for the grader's launch (grader/broker/local.py) and for
Kafka's default launch: the bin scripts' JVM options (-Xmx1G -Xms1G, G1 with the
kafka-run-class performance flags) and Kafka's stock server settings, changed only
where KRaft on one node needs it. Both use the same jars, machine and run, alternating.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.broker import jars  # noqa: E402
from grader.broker.addresses import free_port, kafka_uuid  # noqa: E402
from grader.broker.base import metadata_answers  # noqa: E402
from grader.broker.local import start_local  # noqa: E402

DEFAULT_JVM = ["-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15",
               "-Djava.awt.headless=true"]
# Kafka's config/server.properties (4.x), with the static-quorum lines one KRaft node needs.
DEFAULT_PROPS = """process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
num.network.threads=3
num.io.threads=8
log.dirs={data}
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""


def default_launch() -> tuple[float, int]:
    """Kafka's default launch; returns (seconds to ready, RSS in MiB at ready)."""
    java = jars.java_executable()
    classpath = jars.kafka_classpath(lambda m: None)
    work = Path(tempfile.mkdtemp(prefix="kk-bench-default-"))
    port, cport = free_port(), free_port()
    cfg = work / "server.properties"
    cfg.write_text(DEFAULT_PROPS.format(port=port, cport=cport, data=work / "data"))
    log4j = f"-Dlog4j2.configurationFile={ROOT / 'grader' / 'broker' / 'log4j2.properties'}"
    started = time.monotonic()
    subprocess.run([java, *DEFAULT_JVM, log4j, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t",
                    kafka_uuid(), "-c", str(cfg)], check=True, capture_output=True)
    proc = subprocess.Popen([java, *DEFAULT_JVM, log4j, "-cp", classpath, "kafka.Kafka", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not metadata_answers(f"127.0.0.1:{port}", timeout=1.0):
            if proc.poll() is not None:
                raise RuntimeError("default broker exited")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        return elapsed, rss_mib(proc.pid)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def grader_launch(fast: bool = True) -> tuple[float, int]:
    """The grader's launch; fast=False turns off the storage template and the CDS archive."""
    os.environ["KAFKA_KATAS_FAST_START"] = "1" if fast else "0"
    started = time.monotonic()
    broker = start_local(lambda m: None)
    try:
        return time.monotonic() - started, rss_mib(broker.nodes[0].process.pid)
    finally:
        broker.stop()
        os.environ.pop("KAFKA_KATAS_FAST_START")


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def grade_wall(args: list[str], env: dict | None = None) -> float:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, capture_output=True,
                            env={**os.environ, **(env or {})})
    if result.returncode not in (0, 1):
        raise RuntimeError(result.stderr.decode()[-2000:])
    return time.monotonic() - started


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    os.environ.clear()
    os.environ.update(env)
    jars.kafka_classpath(print)  # fetch jars outside the timings

    grader_launch()  # builds the template and CDS archive once, outside the timings
    ours, plain, default, ours_rss, default_rss = [], [], [], [], []
    for _ in range(args.runs):  # alternate, so drift in machine load hits all alike
        t, rss = grader_launch()
        ours.append(t)
        ours_rss.append(rss)
        plain.append(grader_launch(fast=False)[0])
        t, rss = default_launch()
        default.append(t)
        default_rss.append(rss)

    def runs(xs):
        return ", ".join(f"{x:.2f}" for x in xs)

    print(f"P1 broker cold start (format + spawn -> metadata answers), median of {args.runs}:")
    print(f"   Kafka default launch          {median(default):.2f}s  ({runs(default)})")
    print(f"   grader, plain (JVM flags+cfg) {median(plain):.2f}s  ({runs(plain)})  "
          f"{median(default) / median(plain):.2f}x faster than default")
    print(f"   grader, template + AppCDS     {median(ours):.2f}s  ({runs(ours)})  "
          f"{median(default) / median(ours):.2f}x faster than default")
    print(f"P4 broker RSS at ready, median: grader {median(ours_rss):.0f} MiB vs default {median(default_rss):.0f} MiB")

    clusters, cluster_rss = [], []
    for _ in range(args.runs):
        started = time.monotonic()
        cluster = start_local(lambda m: None, node_count=3)
        clusters.append(time.monotonic() - started)
        cluster_rss.append(sum(rss_mib(n.process.pid) for n in cluster.nodes))
        cluster.stop()
    print(f"3-broker cluster start, median of {args.runs}: {median(clusters):.2f}s ({runs(clusters)}); "
          f"RSS of the three JVMs at ready: median {median(cluster_rss):.0f} MiB")

    cold = [grade_wall(["kata-01", "--solution", "-q", "--broker", "local"]) for _ in range(args.runs)]
    from grader.broker import reusable

    _, started = reusable.up(lambda m: None)
    try:
        warm = [grade_wall(["kata-01", "--solution", "-q"]) for _ in range(args.runs)]
    finally:
        if started:  # never stop a reusable broker someone else is using
            reusable.down()
    print(f"grade kata-01 --solution wall time, median of {args.runs}: cold (starts its broker) {median(cold):.2f}s, "
          f"warm (grade broker up) {median(warm):.2f}s")


if __name__ == "__main__":
    main()
