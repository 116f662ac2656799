"""Kafka Connect's REST API for checks: register, inspect and remove connectors.

    from grader.kit.connect import ConnectRest
    rest = ConnectRest(connect_url)          # the `connect_url` fixture
    rest.put_config("kk-abc-dbz", config)    # create or update
    rest.wait_running("kk-abc-dbz")          # connector and every task RUNNING, or the task's trace

Connector names must carry the run id (the worker is shared by every run of one validation).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from typing import Any


class ConnectError(Exception):
    """The REST API refused a request: status and Connect's own message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


REBALANCING = ("rebalance", "stale configuration", "conflicting operation")  # Connect's 409 texts


def is_rebalancing(status: int, message: str) -> bool:
    """Connect's "try again in a moment" answer (HTTP 409 while the worker group rebalances)."""
    return status == 409 and any(word in message.lower() for word in REBALANCING)


class ConnectRest:
    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        # A worker answers 409 while its group rebalances (after any connector was created or deleted,
        # by this run or another sharing the worker): Connect's advice is to retry, so a check never
        # fails on it.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self._once(method, path, body)
            except ConnectError as exc:
                if not is_rebalancing(exc.status, exc.message) or time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def _once(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                text = json.loads(text).get("message", text)
            raise ConnectError(exc.code, text) from None
        return json.loads(raw) if raw else None

    def plugins(self) -> list[str]:
        return [p["class"] for p in self._call("GET", "/connector-plugins")]

    def put_config(self, name: str, config: dict[str, str]) -> dict:
        return self._call("PUT", f"/connectors/{name}/config", {k: str(v) for k, v in config.items()})

    def validate(self, plugin_class: str, config: dict[str, str]) -> list[str]:
        """Connect's own validation: every error message it reports for this config (empty when valid)."""
        short = plugin_class.rsplit(".", 1)[-1]
        answer = self._call("PUT", f"/connector-plugins/{short}/config/validate",
                            {"name": "kk-validate", "connector.class": plugin_class,
                             **{k: str(v) for k, v in config.items()}})
        values = [c.get("value") or {} for c in answer.get("configs") or []]  # Debezium leaves some null
        return [f"{v.get('name')}: {e}" for v in values for e in v.get("errors") or []]

    def config(self, name: str) -> dict[str, str]:
        """The configuration Connect stored for the connector (what it runs with)."""
        return self._call("GET", f"/connectors/{name}/config")

    def status(self, name: str) -> dict:
        return self._call("GET", f"/connectors/{name}/status")

    def restart(self, name: str) -> None:
        self._call("POST", f"/connectors/{name}/restart?includeTasks=true")

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """Stop the connector and its tasks (PUT /stop) and wait for STOPPED; resume() starts them again."""
        self._call("PUT", f"/connectors/{name}/stop")
        deadline = time.monotonic() + timeout
        while self.status(name)["connector"]["state"] != "STOPPED":
            if time.monotonic() > deadline:
                raise ConnectError(504, f"{name} was not STOPPED within {timeout:.0f} s")
            time.sleep(0.2)

    def resume(self, name: str) -> None:
        self._call("PUT", f"/connectors/{name}/resume")

    def delete(self, name: str) -> None:
        try:
            self._call("DELETE", f"/connectors/{name}")
        except ConnectError as exc:
            if exc.status != 404:
                raise

    def wait_running(self, name: str, timeout: float = 60.0) -> dict:
        """The status once connector and tasks all run; ConnectError with a failed task's trace otherwise."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            try:
                status = self.status(name)
            except ConnectError as exc:
                if exc.status != 404:
                    raise
                time.sleep(0.2)
                continue
            states = [status["connector"]["state"], *(t["state"] for t in status.get("tasks", []))]
            failed = [t for t in status.get("tasks", []) if t["state"] == "FAILED"]
            if failed or status["connector"]["state"] == "FAILED":
                trace = (failed[0] if failed else status["connector"]).get("trace", "")
                raise ConnectError(500, f"{name} failed: {trace.strip().splitlines()[0] if trace else states}")
            if status.get("tasks") and all(s == "RUNNING" for s in states):
                return status
            time.sleep(0.2)
        raise ConnectError(504, f"{name} was not RUNNING within {timeout:.0f} s (last status: {status})")
