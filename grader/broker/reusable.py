"""A local broker kept warm between `grade` runs (`grade broker up|down|status`).

Its state file records the JVM's pid, its address and its data folder; every reader
checks that the pid still runs and the broker still answers, and clears a stale file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from grader import KAFKA_VERSION
from grader.broker import jars
from grader.broker.base import Broker, Progress, metadata_answers
from grader.errors import UsageError
from grader.jsonfile import write_json_atomic
from grader.proc import pid_running


def state_path() -> Path:
    return jars.cache_root() / "broker-state.json"


@dataclass
class ReusedBroker(Broker):
    """A broker `grade broker up` started: runs use it and leave it running."""

    pids: tuple[int, ...] = ()
    root: str = ""
    log: str = ""
    client_config: str = ""  # `grade broker up --sasl`: the grading principal's client config file

    def alive(self) -> bool:
        return all(pid_running(p) for p in self.pids) and metadata_answers(self.bootstrap_servers, timeout=5.0)

    def process_alive(self) -> bool:
        return all(pid_running(p) for p in self.pids)

    def death_report(self) -> str:
        dead = [p for p in self.pids if not pid_running(p)]
        tail = ""
        if self.log and Path(self.log).exists():
            tail = "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-20:])
        what = f"pid {dead[0]} has exited" if dead else "it stopped answering metadata requests"
        return f"The reusable broker at {self.bootstrap_servers}: {what}.\n{tail}".rstrip()

    def stop(self) -> None:
        """Leave it running: that is the point of a reusable broker."""


def _port_open(broker: ReusedBroker) -> bool:
    from grader.broker.base import tcp_open

    return all(tcp_open(hp) for hp in broker.bootstrap_servers.split(","))


def read_state() -> dict | None:
    try:
        return json.loads(state_path().read_text())
    except (OSError, ValueError):
        return None


def running() -> ReusedBroker | None:
    """The reusable broker if one is up and answering; a stale state file is cleared."""
    state = read_state()
    if not state:
        return None
    broker = ReusedBroker(bootstrap_servers=state["bootstrap_servers"], provider="local (reusable)",
                          description=f"reusable local broker, pid {state['pids'][0]}", reused=True,
                          pids=tuple(state["pids"]), root=state.get("root", ""), log=state.get("log", ""),
                          client_config=state.get("client_config", ""))
    # A live JVM with its port open is enough here: the runner notices a broker that dies
    # later, and this check sits on every `grade` run's path (a metadata round trip costs ~50 ms).
    if state.get("kafka_version") == KAFKA_VERSION and broker.process_alive() and _port_open(broker):
        return broker
    _clear(state)
    return None


def client_config_path() -> Path:
    return jars.cache_root() / "sasl-grader.properties"


def up(progress: Progress, secure=None) -> tuple[ReusedBroker, bool]:
    """Start the reusable broker unless one runs. Returns (broker, started_now).
    secure (a grader.broker.secure.SaslSetup): SASL, ACLs, and the grading principal's client config file."""
    existing = running()
    if existing:
        return existing, False
    from grader.broker.local import start_local

    broker = start_local(progress, detached=True, secure=secure)
    node = broker.nodes[0]
    state = {"pids": [n.process.pid for n in broker.nodes], "bootstrap_servers": broker.bootstrap_servers,
             "root": str(broker.root), "log": str(node.log_path), "kafka_version": KAFKA_VERSION,
             "started_at": time.time()}
    if secure is not None:
        state["client_config"] = str(secure.write_client_config(client_config_path(), broker.bootstrap_servers))
    write_json_atomic(state_path(), state, indent=2)
    # Detach: the JVM runs in its own session; forget the Popen so nothing reaps or kills it.
    broker.nodes = []
    broker.root = None
    return running() or ReusedBroker(bootstrap_servers=state["bootstrap_servers"], provider="local (reusable)",
                                     pids=tuple(state["pids"]), root=state["root"], log=state["log"],
                                     client_config=state.get("client_config", "")), True


def down() -> bool:
    """Stop the reusable broker. Returns False when none was recorded."""
    state = read_state()
    if not state:
        return False
    _clear(state)
    return True


def _clear(state: dict) -> None:
    for pid in state.get("pids", []):
        if pid_running(pid) and _is_kafka(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid)
    root = state.get("root")
    if root and Path(root).name.startswith("kafka-katas-"):
        shutil.rmtree(root, ignore_errors=True)
    if state.get("client_config"):
        client_config_path().unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        state_path().unlink()


def _is_kafka(pid: int) -> bool:
    """Never kill a recycled pid that belongs to something else."""
    try:
        return b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the state file


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pid_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def require_not_external(bootstrap_servers: str | None) -> None:
    if bootstrap_servers:
        raise UsageError("`grade broker` manages the local reusable broker; an external cluster is managed by "
                         "whoever runs it.", next_step="unset KAFKA_BOOTSTRAP_SERVERS, then run `grade broker up`.")
