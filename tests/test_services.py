"""Services beside the broker (grader/services/): a real PostgreSQL and a real Kafka Connect worker,
started for a kata that names them, shared by every run of one validation, and gone afterwards,
even when the grader is SIGKILLed."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

from grader.errors import InfraError
from grader.services import postgres

COURSE = FIXTURES / "course-services"
needs_postgres = pytest.mark.skipif(
    not (os.path.exists("/usr/lib/postgresql") or __import__("shutil").which("initdb")),
    reason="PostgreSQL is not installed (`apt-get install postgresql`; .ci/run installs it)")


def _ps() -> str:
    return subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _grade(*args: str) -> subprocess.Popen:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "grader", *args, "--course", str(COURSE)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@needs_postgres
def test_validation_shares_services_and_leaves_nothing_behind():
    proc = _grade("validate", "kata-01")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    # one PostgreSQL and one Connect worker for the stub's and the solution's runs
    assert len(re.findall(r"Starting PostgreSQL on 127\.0\.0\.1:(\d+)", out)) == 1, out
    assert len(re.findall(r"Starting a Kafka Connect worker on", out)) == 1, out
    pg_port = re.search(r"Starting PostgreSQL on 127\.0\.0\.1:(\d+)", out).group(1)
    connect_port = int(re.search(r"Connect worker on 127\.0\.0\.1:(\d+)", out).group(1))
    assert f"-p {pg_port}" not in _ps()
    assert not _answers(int(pg_port)) and not _connect_jvms(connect_port)


def _connect_jvms(port: int) -> list[str]:
    """Command lines of Connect worker JVMs whose worker.properties listens on port."""
    found = []
    for line in _ps().splitlines():
        props = re.search(r"ConnectDistributed (\S+worker\.properties)", line)
        if props and "java" in line:
            try:
                if f"listeners=http://127.0.0.1:{port}\n" in Path(props.group(1)).read_text():
                    found.append(line)
            except OSError:
                pass
    return found


@needs_postgres
def test_sigkilled_grader_takes_its_services_along():
    proc = _grade("kata-01", "--solution")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Starting a Kafka Connect worker" in line:
            break
    pg_port = int(re.search(r"Starting PostgreSQL on 127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
    connect_port = int(re.search(r"Connect worker on 127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
    deadline = time.monotonic() + 30
    while not _connect_jvms(connect_port) and time.monotonic() < deadline:  # kill with both running
        time.sleep(0.05)
    assert _connect_jvms(connect_port) and _answers(pg_port), "".join(lines)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (f"-p {pg_port}" in _ps() or _connect_jvms(connect_port)):
        time.sleep(0.2)
    assert f"-p {pg_port}" not in _ps(), "PostgreSQL outlived the SIGKILLed grader"
    assert not _connect_jvms(connect_port), "the Connect worker outlived the SIGKILLed grader"


def test_missing_postgres_names_the_install_command(monkeypatch):
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    with pytest.raises(InfraError) as err:
        postgres.bin_dir()
    assert "PostgreSQL was not found" in err.value.what
    assert "sudo apt-get install postgresql" in err.value.next_step
    assert "KAFKA_KATAS_POSTGRES_URL" in err.value.next_step


@needs_postgres
def test_a_service_that_dies_is_infrastructure_trouble():
    proc = _grade("kata-02", "--solution")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out
    assert "The postgres service of kata-02 stopped while the checks ran; the verdicts are void." in out
    assert "Next: run the same command again." in out


@needs_postgres
def test_a_kata_whose_files_are_wrong_starts_no_service(tmp_path):
    """Lint problems mean no check will run: validate says so at once instead of starting PostgreSQL and
    a Connect worker first."""
    import shutil
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    shutil.rmtree(course / "solutions" / "kata-01-rows")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "grader", "validate", "kata-01", "--course", str(course)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "kata-01-rows/rows.py: the solution file is missing." in out, out
    assert "Starting PostgreSQL" not in out and "Connect worker" not in out, out


def test_connect_rest_retries_only_rebalancing_conflicts():
    """A 409 while the worker group rebalances is "retry in a moment"; a 409 for a name that exists is an answer."""
    from grader.kit.connect import is_rebalancing

    assert is_rebalancing(409, "Cannot complete request because of a conflicting operation (e.g. worker rebalance)")
    assert is_rebalancing(409, "Request cannot be completed because a rebalance is expected")
    assert is_rebalancing(409, "Cannot complete request momentarily due to stale configuration (typically caused "
                               "by a concurrent config change)")
    assert not is_rebalancing(409, "Connector kk-1 already exists")
    assert not is_rebalancing(500, "Request cannot be completed because a rebalance is expected")
