"""A grader run by an ordinary user (not root): no unprivileged-user layer to drop to, so the learner
host is a plain separate process (or bwrap, when user namespaces allow it), and the report says so.

Run as root here (CI is root), the grader itself is started as `nobody` with setpriv, on a copy of
the course that user may read, against the session's broker.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tomllib
from conftest import ROOT

from grader import KAFKA_VERSION
from grader.broker.jars import jar_dir
from grader.catalog import load_course
from grader.host.sandbox import bwrap_works

pytestmark = pytest.mark.broker

SETPRIV = shutil.which("setpriv")


def _as_nobody() -> list[str]:
    entry = pwd.getpwnam("nobody")
    return [SETPRIV, "--reuid", str(entry.pw_uid), "--regid", str(entry.pw_gid), "--clear-groups", "--"]


def _runs_as_nobody(python: str) -> bool:
    """`nobody` can start this interpreter *and* start it again from inside (setpriv's own exec may still
    hold root's capabilities; the grader's subprocesses do not)."""
    probe = subprocess.run([*_as_nobody(), python, "-c", "import subprocess, sys; sys.exit(subprocess.run("
                            "[sys.executable, '-c', 'import click, confluent_kafka, jinja2, pytest, rich, yaml']"
                            ").returncode)"], capture_output=True, cwd="/")
    return probe.returncode == 0


def _own_environment(top: Path) -> str:
    """What an ordinary user has: a Python environment of their own (here, when this one lives where `nobody`
    may not enter, e.g. under /root/.pyenv): a venv of the system Python with the grader's dependencies."""
    system = shutil.which("python3", path="/usr/bin:/bin")
    assert system, "no system python3 to build an environment `nobody` can run"
    venv = top / "venv"
    subprocess.run([system, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *deps], capture_output=True,
                         text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return str(venv / "bin" / "python")


@pytest.fixture(scope="module")
def course():
    if os.geteuid() != 0 or not SETPRIV:
        pytest.skip("needs root and setpriv to start the grader as another user")
    top = Path(tempfile.mkdtemp(prefix="kk-nonroot-"))
    top.chmod(0o755)
    for part in ("katas", "checks", "solutions"):
        shutil.copytree(ROOT / part, top / "course" / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "grader", top / "src" / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    home = top / "home"
    home.mkdir()
    shutil.chown(home, "nobody")
    python = sys.executable if _runs_as_nobody(sys.executable) else _own_environment(top)
    subprocess.run(["chmod", "-R", "a+rX", str(top)], check=True)
    assert _runs_as_nobody(python), f"`nobody` cannot run {python}"
    yield top, python
    shutil.rmtree(top, ignore_errors=True)


def _grade(course, bootstrap: str, *args: str, isolation: str | None = None) -> tuple[int, dict, str]:
    top, python = course
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(top / "home"), "NO_COLOR": "1",
           "KAFKA_KATAS_DATA": str(top / "home" / "data"), "PYTHONPATH": str(top / "src")}
    if isolation:
        env["KATA_ISOLATION"] = isolation
    proc = subprocess.run([*_as_nobody(), python, "-m", "grader", *args, "--course", str(top / "course"),
                           "--json", "--bootstrap-servers", bootstrap], capture_output=True, text=True,
                          env=env, cwd=str(top / "home"), timeout=600)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    return proc.returncode, report, proc.stderr + str(report.get("message", ""))


@pytest.mark.parametrize("isolation", ["process", None])
def test_an_ordinary_user_grades_and_the_report_names_the_isolation(course, bootstrap, isolation):
    code, report, err = _grade(course, bootstrap, "kata-01", "--solution", isolation=isolation)
    assert (code, report["status"]) == (0, "pass"), err[-3000:]
    # Never "user": an ordinary user has no one less privileged to become.
    want = "process" if isolation == "process" or not bwrap_works() else "bwrap"
    assert report["isolation"] == want


def test_an_ordinary_user_still_fails_the_stub(course, bootstrap):
    code, report, err = _grade(course, bootstrap, "kata-01", isolation="process")
    assert (code, report["status"]) == (1, "fail"), err[-3000:]
    assert report["isolation"] == "process"


def test_an_ordinary_user_grades_a_kata_with_crashing_children(course, bootstrap):
    """kata-04's checks SIGKILL the learner's consumer in child hosts and read the files it left."""
    code, report, err = _grade(course, bootstrap, "kata-04", "--solution", isolation="process")
    assert (code, report["status"]) == (0, "pass"), (err[-3000:], [t for t in report["tests"]
                                                                    if t["status"] != "pass"])
    assert report["isolation"] == "process"


# Every kata, as an ordinary user (about 6 minutes): opt-in, CI runs the three above.
ALL_KATAS = os.environ.get("KK_NONROOT_ALL") == "1"


@pytest.mark.skipif(not ALL_KATAS, reason="set KK_NONROOT_ALL=1 to grade every one-broker kata as `nobody`")
@pytest.mark.parametrize("kata_id", [k.id for k in load_course(ROOT).katas if not k.needs_own_cluster])
def test_an_ordinary_user_grades_every_kata(course, bootstrap, kata_id):
    code, report, err = _grade(course, bootstrap, kata_id, "--solution")
    assert (code, report["status"]) == (0, "pass"), (err[-3000:], [t for t in report["tests"]
                                                                    if t["status"] != "pass"])


@pytest.mark.skipif(not ALL_KATAS, reason="set KK_NONROOT_ALL=1 to grade the cluster katas as `nobody`")
@pytest.mark.parametrize("kata_id", [k.id for k in load_course(ROOT).katas if k.needs_own_cluster])
def test_an_ordinary_user_grades_a_kata_on_a_cluster_of_its_own(course, kata_id):
    """The grader, as `nobody`, starts the kata's own 3-node cluster from a jar cache it may read (a copy of
    root's: an ordinary user has one of their own), stops and restarts its nodes, and gives the verdict."""
    top, python = course
    cache = top / "cache"
    lib = cache / f"kafka-{KAFKA_VERSION}" / "lib"
    if not lib.is_dir():
        shutil.copytree(jar_dir(), lib)
        subprocess.run(["chown", "-R", "nobody", str(cache)], check=True)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(top / "home"), "NO_COLOR": "1",
           "KAFKA_KATAS_DATA": str(top / "home" / "data"), "PYTHONPATH": str(top / "src"),
           "KAFKA_KATAS_CACHE": str(cache)}
    for name in ("JAVA_HOME",):
        if os.environ.get(name):
            env[name] = os.environ[name]
    proc = subprocess.run([*_as_nobody(), python, "-m", "grader", kata_id, "--solution", "--course",
                           str(top / "course"), "--json"], capture_output=True, text=True, env=env,
                          cwd=str(top / "home"), timeout=900)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert (proc.returncode, report["status"]) == (0, "pass"), (proc.stderr[-3000:], [
        t for t in report["tests"] if t["status"] != "pass"])
    assert report["isolation"] == ("bwrap" if bwrap_works() else "process")
    left = subprocess.run(["pgrep", "-u", "nobody", "-f", "kafka.Kafka"], capture_output=True, text=True)
    assert not left.stdout.strip(), f"nodes left running as nobody: {left.stdout}"
