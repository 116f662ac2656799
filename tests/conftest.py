"""Fixtures for the grader's own tests: one real broker for the whole session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
OK_COURSE = FIXTURES / "course-ok"


@pytest.fixture(scope="session")
def broker():
    """A real Kafka broker: KAFKA_BOOTSTRAP_SERVERS if set, else a local KRaft broker for the session."""
    from grader.broker import start

    b = start("auto" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "local", None,
              lambda m: print(m, file=sys.stderr))
    yield b
    b.stop()


@pytest.fixture(scope="session")
def bootstrap(broker) -> str:
    return broker.bootstrap_servers


def run_grade(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 300,
              input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run the real `grade` CLI the way a user does, in a subprocess."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("KAFKA_BOOTSTRAP_SERVERS", None) if env and env.get("KAFKA_BOOTSTRAP_SERVERS") == "" else None
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, input=input_text)


def kafka_jvms() -> list[str]:
    """Command lines of running Kafka broker JVMs (to prove none is left behind)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "kafka.Kafka" in line and "java" in line]
