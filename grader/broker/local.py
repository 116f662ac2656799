"""The local provider: Apache Kafka in KRaft mode as a child JVM bound to 127.0.0.1.

One process per node, each a combined broker+controller with a static voter set, so
the same code starts the 1-node broker every kata uses and a 3-node cluster later.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from grader import proc as proc_guard
from grader.broker import jars, warmup
from grader.broker.addresses import free_port, free_ports, kafka_uuid
from grader.broker.base import Broker, Progress, metadata_answers
from grader.broker.secure import SaslSetup
from grader.errors import InfraError

# Small heap, serial GC and C1 only: a grading broker serves tiny loads on 2 cores,
# and these cut start-up CPU and memory (measured in docs/benchmarks.md).
JVM_FLAGS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-XX:-UsePerfData", "-Djava.awt.headless=true"]
START_TIMEOUT_S = 90.0
# Overrides the start deadline: CI on a crowded machine may want more; tests use an impossibly short one
# to cause a slow start for real.
START_TIMEOUT_ENV = "KAFKA_KATAS_START_TIMEOUT_S"
PORT_ATTEMPTS = 3


class StartTimeout(InfraError):
    """The JVMs run but the broker did not become ready in time (a loaded machine, mostly)."""


class PortConflict(InfraError):
    """The broker could not bind a port it was given."""
LOG_TAIL_LINES = 25


def start_timeout() -> float:
    raw = os.environ.get(START_TIMEOUT_ENV)
    if raw is None:
        return START_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        from grader.errors import UsageError

        raise UsageError(f"{START_TIMEOUT_ENV}={raw!r} is not a number of seconds.",
                         next_step=f"set it to e.g. 90 (seconds), or unset it: `unset {START_TIMEOUT_ENV}`.")
    return value


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    workdir: Path
    broker_port: int = 0  # inter-broker listener
    advertised_port: int = 0  # what clients are told; a fault proxy's port when one is used
    process: subprocess.Popen | None = None
    command: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.broker_port = self.broker_port or free_port()
        self.advertised_port = self.advertised_port or self.port

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no broker log was written)"
        return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class LocalBroker(Broker):
    nodes: list[Node] = field(default_factory=list)
    root: Path | None = None
    owner_pid: int | None = None  # the grader process whose life the nodes share (None: detached)

    def _pids(self) -> list[int | None]:
        """Current pids: checks may have restarted nodes (recorded in the control file)."""
        if self.control_file and self.control_file.exists():
            import json

            try:
                return [n.get("pid") for n in json.loads(self.control_file.read_text())["nodes"]]
            except (OSError, ValueError, KeyError):
                pass
        return [n.process.pid if n.process and n.process.poll() is None else None for n in self.nodes]

    def process_alive(self) -> bool:
        for node in self.nodes:  # reap our own children so their pids read as gone
            if node.process is not None:
                node.process.poll()
        return all(pid is not None and proc_guard.pid_running(pid) for pid in self._pids())

    def death_report(self) -> str:
        for node in self.nodes:
            code = node.process.poll() if node.process else None
            if code is not None:
                return (f"The local Kafka broker (node {node.node_id}, pid {node.process.pid}) exited with "
                        f"code {code}. Last lines of {node.log_path}:\n{node.log_tail()}")
        return f"The local Kafka broker at {self.bootstrap_servers} stopped answering metadata requests."

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Used by fault checks and by the test that proves a dead broker is reported as such."""
        node = next(n for n in self.nodes if n.node_id == node_id)
        if node.process and node.process.poll() is None:
            os.killpg(node.process.pid, sig)

    @property
    def control_file(self) -> Path | None:
        return self.root / "cluster.json" if self.root else None

    def write_control_file(self) -> None:
        """What checks need to stop, kill and restart nodes (grader/kit/cluster.py reads it)."""
        if not self.control_file:
            return
        from grader.jsonfile import write_json_atomic

        nodes = [{"node_id": n.node_id, "pid": n.process.pid if n.process else None, "port": n.port,
                  "advertised_port": n.advertised_port, "broker_port": n.broker_port,
                  "command": n.command, "log": str(n.log_path)} for n in self.nodes]
        write_json_atomic(self.control_file, {"bootstrap_servers": self.bootstrap_servers, "nodes": nodes,
                                              "owner_pid": self.owner_pid})

    def stop(self) -> None:
        for node in self.nodes:
            _terminate(node.process)
        _kill_restarted(self.control_file)
        if self.root:
            _keep_last_log(self.nodes)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def start_local(progress: Progress, node_count: int = 1, proxy: bool = False, detached: bool = False,
                secure: SaslSetup | None = None) -> LocalBroker:
    """Start a local broker (or cluster). detached: it may outlive this process (`grade broker up`).
    secure: SASL/SCRAM listeners, the StandardAuthorizer and prefixed ACLs (grader/broker/secure.py)."""
    java = jars.java_executable()
    classpath = jars.kafka_classpath(progress)
    archive = warmup.cds_archive(java, classpath)
    if not archive.is_file() and warmup.fast_start_enabled() and not warmup.archive_deferred():
        _build_archive(java, classpath, archive, progress)
    progress(f"Starting a local Kafka broker ({node_count} node{'s' if node_count > 1 else ''}) on 127.0.0.1…")
    started = time.monotonic()
    for attempt in range(PORT_ATTEMPTS):
        broker = _launch(java, classpath, node_count, warmup.cds_flags(archive), proxy, detached, secure)
        try:
            _wait_ready(broker)
            if secure:
                secure.grant(broker.bootstrap_servers)
            break
        except PortConflict:
            # Another process took a port between our probe and the JVM's bind: new ports, once more.
            broker.stop()
            if attempt == PORT_ATTEMPTS - 1:
                raise
            progress("A port was taken meanwhile; starting again on other ports…")
        except StartTimeout as slow:
            # One automatic retry: a start that was only slow (another grader, a build) usually
            # succeeds the second time, and the learner should not see "grading is broken".
            broker.stop()
            if attempt > 0:
                raise
            progress(f"{slow.what} Starting it once more…")
        except BaseException:
            broker.stop()
            raise
    broker.description = (f"local Kafka, pid {', '.join(str(n.process.pid) for n in broker.nodes)}, "
                          f"ready in {time.monotonic() - started:.1f}s")
    return broker


def _launch(java: str, classpath: str, node_count: int, extra_flags: list[str], proxy: bool = False,
            detached: bool = False, secure: SaslSetup | None = None) -> LocalBroker:
    """Prepare storage for every node and spawn the JVMs (without waiting for readiness).

    With proxy, each node advertises a port of its own for a fault proxy (grader/kit/faultproxy.py)
    that the checks run; the grader itself talks to the real ports.
    """
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None  # tmpfs: no disk latency
    root = Path(tempfile.mkdtemp(prefix="kafka-katas-", dir=base))
    # Every listener of every node (client, controller, inter-broker, advertised proxy) on a port of its own.
    ports = iter(free_ports(node_count * (4 if proxy else 3)))
    nodes = [Node(i, next(ports), next(ports), root / f"node-{i}", broker_port=next(ports),
                  advertised_port=next(ports) if proxy else 0)
             for i in range(1, node_count + 1)]
    broker = LocalBroker(bootstrap_servers=",".join(f"127.0.0.1:{n.port}" for n in nodes),
                         provider="local", nodes=nodes, root=root, description=f"local Kafka in {root}",
                         client_properties=secure.admin_properties() if secure else {})
    try:
        log4j = root / "log4j2.properties"
        log4j.write_bytes(resources.files("grader.broker").joinpath("log4j2.properties").read_bytes())
        common = [java, *JVM_FLAGS, f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        cluster_id = warmup.template_cluster_id() or kafka_uuid()
        for node in nodes:
            _write_config(node, nodes, secure)
            fmt = lambda d, cid, n=node: _format_into(common, n, nodes, d, cid)  # noqa: E731
            if secure:  # its SCRAM users live in the formatted metadata: never the shared template
                _format(common, cluster_id, config_path(node), node, secure.format_args())
            elif warmup.fast_start_enabled() and warmup.ensure_template(fmt, node.node_id, cluster_id):
                warmup.copy_template(node.node_id, node.workdir / "data")
            else:  # no usable template (e.g. a read-only cache): format in place
                _format(common, cluster_id, config_path(node), node)
        # Start every node before waiting: a multi-voter quorum needs a majority up to elect a leader.
        for node in nodes:
            node.command = [*common[:1], *extra_flags, *common[1:], f"-Dkafka.logs.dir={node.workdir}",
                            "kafka.Kafka", str(config_path(node))]
            # Unless detached, the JVM dies with the grader even if the grader is SIGKILLed.
            node.process = _spawn(node.command if detached else proc_guard.guarded(node.command), node.log_path)
        broker.owner_pid = None if detached else os.getpid()
        broker.write_control_file()
    except BaseException:
        broker.stop()
        raise
    return broker


def _format_into(common: list[str], node: Node, nodes: list[Node], data_dir: Path, cluster_id: str) -> None:
    """Format a template directory for node (same settings, other log.dirs)."""
    text = config_path(node).read_text().replace(f"log.dirs={node.workdir / 'data'}", f"log.dirs={data_dir}")
    cfg = data_dir.parent / f"{data_dir.name}.properties"
    cfg.write_text(text)
    try:
        _format(common, cluster_id, cfg, node)
    finally:
        cfg.unlink(missing_ok=True)


def build_archive_if_missing(progress: Progress) -> None:
    """Build the class-data archive now if this machine has none (`grade` calls it after the verdict)."""
    if not warmup.fast_start_enabled():
        return
    try:
        java = jars.java_executable()
        classpath = jars.kafka_classpath(progress)
    except InfraError:
        return
    archive = warmup.cds_archive(java, classpath)
    if not archive.is_file():
        _build_archive(java, classpath, archive, progress)


def _build_archive(java: str, classpath: str, archive: Path, progress: Progress) -> None:
    def start(extra_flags: list[str]):
        broker = _launch(java, classpath, 1, extra_flags)
        node = broker.nodes[0]
        return node.process, broker.bootstrap_servers, broker.stop

    try:
        warmup.build_cds_archive(start, progress, archive)
    except Exception as exc:  # an optimisation only: never block grading on it
        progress(f"(skipped the class-data archive: {exc})")


def config_path(node: Node) -> Path:
    return node.workdir / "server.properties"


def _write_config(node: Node, nodes: list[Node], secure: SaslSetup | None = None) -> Path:
    template = resources.files("grader.broker").joinpath("server.properties").read_text()
    replicas = len(nodes)
    node.workdir.mkdir(parents=True, exist_ok=True)
    text = template.format(
        node_id=node.node_id,
        voters=",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes),
        port=node.port, controller_port=node.controller_port, data_dir=node.workdir / "data",
        broker_port=node.broker_port, advertised_port=node.advertised_port,
        internal_rf=replicas, internal_min_isr=1 if replicas == 1 else 2,
    )
    path = config_path(node)
    path.write_text(secure.server_properties(text) if secure else text)
    return path


def _format(common: list[str], cluster_id: str, config: Path, node: Node, extra: list[str] = ()) -> None:
    cmd = common + ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise InfraError(
            f"Formatting the Kafka storage for node {node.node_id} failed (exit {proc.returncode}).",
            detail="\n".join((proc.stdout + proc.stderr).strip().splitlines()[-LOG_TAIL_LINES:]),
            next_step="run the same command again; if it repeats, delete the jar cache "
            f"({jars.cache_root()}) so it is fetched anew.",
        )


def _spawn(cmd: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        # A session of its own: teardown kills the whole group, and Ctrl-C in the
        # terminal is handled by the grader (which then stops the broker) instead of
        # reaching the JVM half-way through a check.
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def _wait_ready(broker: LocalBroker) -> None:
    limit = start_timeout()
    deadline = time.monotonic() + limit
    answered = False
    while time.monotonic() < deadline:
        for node in broker.nodes:
            if node.process.poll() is not None:
                tail = node.log_tail()
                conflict = "Address already in use" in tail
                error = PortConflict if conflict else InfraError
                cause = "a port was already taken" if conflict else "see the log below"
                raise error(f"The local Kafka broker exited during start-up ({cause}).",
                                 detail=f"Last lines of {node.log_path}:\n{tail}",
                                 next_step="run the same command again.")
        answered = answered or metadata_answers(broker.bootstrap_servers, 1.0, broker.client_properties)
        if answered and (len(broker.nodes) == 1 or _all_registered(broker)):
            return
        time.sleep(0.1)
    load = os.getloadavg()[0]
    # Name the slow step: the JVMs never answering, or (a cluster) a node that never joined.
    if len(broker.nodes) == 1:
        what = "broker did not answer"
    elif not answered:
        what = "cluster did not answer metadata requests"
    else:
        what = (f"cluster answered, but only {_registered(broker)} of its {len(broker.nodes)} nodes registered")
    raise StartTimeout(f"The local Kafka {what} within {limit:.0f}s (load average {load:.1f} on "
                       f"{os.cpu_count()} cores: the machine is busy).",
                       detail=f"Last lines of {broker.nodes[0].log_path}:\n{broker.nodes[0].log_tail()}",
                       next_step="check the machine's load (`uptime`) and run the same command again.")


def _all_registered(broker: LocalBroker) -> bool:
    return _registered(broker) == len(broker.nodes)


def _registered(broker: LocalBroker) -> int:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers, "log_level": 0})
    try:
        return len(admin.list_topics(timeout=2).brokers)
    except Exception:
        return 0


def _terminate(process: subprocess.Popen | None) -> None:
    """Kill the node's whole process group. The data dir is thrown away, so no clean shutdown is owed."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _kill_restarted(control_file: Path | None) -> None:
    """Nodes that checks restarted are not our children: find them in the control file."""
    if not control_file or not control_file.exists():
        return
    import json

    try:
        nodes = json.loads(control_file.read_text())["nodes"]
    except (OSError, ValueError, KeyError):
        return
    for node in nodes:
        pid = node.get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _keep_last_log(nodes: list[Node]) -> None:
    """Copy the broker log out of the throw-away data dir so a failure can still be read."""
    logs = jars.cache_root() / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        for node in nodes:
            if node.log_path.exists():
                shutil.copyfile(node.log_path, logs / f"last-broker-node-{node.node_id}.log")
    except OSError:
        pass
