"""Check-side control of a local multi-broker cluster: stop, kill and restart nodes,
and ask the cluster who leads a partition and who is in sync.

The local provider writes <root>/cluster.json (pids, ports, command lines); the
runner hands its path to the checks (--kata-cluster). A restarted node is recorded
back in that file, so the grader still stops it at the end of the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from grader.clientroute import client_config
from grader.jsonfile import write_json_atomic
from grader.kit.kafka import wait_for


class ClusterControl:
    def __init__(self, control_file: Path):
        self.file = Path(control_file)
        self.bootstrap_servers = self._read()["bootstrap_servers"]

    def _read(self) -> dict:
        return json.loads(self.file.read_text())

    def _write(self, data: dict) -> None:
        write_json_atomic(self.file, data)

    def _node(self, node_id: int) -> dict:
        return next(n for n in self._read()["nodes"] if n["node_id"] == node_id)

    @property
    def node_ids(self) -> list[int]:
        return [n["node_id"] for n in self._read()["nodes"]]

    def admin(self) -> AdminClient:
        """An admin client that never goes through the fault proxies.

        It bootstraps on the inter-broker listeners, whose metadata names those listeners
        too (the client listener's metadata would point back at the proxies).
        """
        direct = ",".join(f"127.0.0.1:{n['broker_port']}" for n in self._read()["nodes"] if self._running(n))
        return AdminClient(client_config({"bootstrap.servers": direct, "log_level": 0}))

    @staticmethod
    def _running(node: dict) -> bool:
        pid = node.get("pid")
        if not pid:
            return False
        try:
            os.kill(pid, 0)
            return Path(f"/proc/{pid}/stat").read_text().split()[2] not in ("Z", "T")
        except (ProcessLookupError, OSError):
            return False

    def is_running(self, node_id: int) -> bool:
        pid = self._node(node_id).get("pid")
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return True

    def kill(self, node_id: int) -> None:
        """SIGKILL: a crash, no controlled shutdown, no leader hand-over."""
        self._signal(node_id, signal.SIGKILL)

    def stop(self, node_id: int) -> None:
        """SIGTERM: a controlled shutdown (leadership moves away first)."""
        self._signal(node_id, signal.SIGTERM)

    def _signal(self, node_id: int, sig: int) -> None:
        pid = self._node(node_id)["pid"]
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        wait_for(lambda: not self.is_running(node_id), 60, f"broker {node_id} (pid {pid}) to exit")

    def start(self, node_id: int) -> None:
        """Start a stopped node again with its original command line and data."""
        data = self._read()
        node = next(n for n in data["nodes"] if n["node_id"] == node_id)
        if self.is_running(node_id):
            return
        command = node["command"]
        if data.get("owner_pid"):  # tie the node to the grader, not to this check process (grader/keeper.py)
            command = [sys.executable, "-m", "grader.keeper", str(data["owner_pid"]), "--", *command]
        with open(node["log"], "ab") as log:
            # Not tied to this check process: the node must outlive it until the grader stops the
            # cluster (it finds restarted nodes in the control file).
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        node["pid"] = proc.pid
        self._write(data)

    def wait_registered(self, count: int, timeout: float = 60) -> None:
        wait_for(lambda: len(self.admin().list_topics(timeout=2).brokers) == count, timeout,
                 f"{count} brokers to be registered in the cluster")

    def leader(self, topic: str, partition: int = 0) -> int:
        md = self.admin().list_topics(topic, timeout=10).topics[topic]
        return md.partitions[partition].leader

    def isr(self, topic: str, partition: int = 0) -> list[int]:
        md = self.admin().list_topics(topic, timeout=10).topics[topic]
        return sorted(md.partitions[partition].isrs)

    def wait_isr(self, topic: str, size: int, partition: int = 0, timeout: float = 60) -> list[int]:
        wait_for(lambda: len(self.isr(topic, partition)) == size, timeout,
                 f"the ISR of {topic}-{partition} to have {size} replicas")
        return self.isr(topic, partition)

    def wait_leader_other_than(self, topic: str, old: int, partition: int = 0, timeout: float = 60) -> int:
        wait_for(lambda: self.leader(topic, partition) not in (old, -1), timeout,
                 f"a new leader for {topic}-{partition} (old leader: {old})")
        return self.leader(topic, partition)

    def advertised_port(self, node_id: int) -> int:
        return self._node(node_id)["advertised_port"]

    def port(self, node_id: int) -> int:
        return self._node(node_id)["port"]

    def uptime_wait(self, seconds: float) -> None:  # pragma: no cover - convenience for fault pacing
        time.sleep(seconds)
