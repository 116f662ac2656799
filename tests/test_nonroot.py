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
from conftest import ROOT

from grader.host.sandbox import bwrap_works

pytestmark = pytest.mark.broker

SETPRIV = shutil.which("setpriv")


def _as_nobody() -> list[str]:
    entry = pwd.getpwnam("nobody")
    return [SETPRIV, "--reuid", str(entry.pw_uid), "--regid", str(entry.pw_gid), "--clear-groups", "--"]


@pytest.fixture(scope="module")
def course():
    if os.geteuid() != 0 or not SETPRIV:
        pytest.skip("needs root and setpriv to start the grader as another user")
    probe = subprocess.run([*_as_nobody(), sys.executable, "-c", "import grader, confluent_kafka"],
                           capture_output=True, text=True, cwd="/")
    assert probe.returncode == 0, f"`nobody` cannot run this Python environment ({sys.executable}): {probe.stderr}"
    top = Path(tempfile.mkdtemp(prefix="kk-nonroot-"))
    top.chmod(0o755)
    for part in ("katas", "checks", "solutions"):
        shutil.copytree(ROOT / part, top / "course" / part, ignore=shutil.ignore_patterns("__pycache__"))
    home = top / "home"
    home.mkdir()
    shutil.chown(home, "nobody")
    subprocess.run(["chmod", "-R", "a+rX", str(top / "course")], check=True)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def _grade(course: Path, bootstrap: str, *args: str, isolation: str | None = None) -> tuple[int, dict, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(course / "home"), "NO_COLOR": "1",
           "KAFKA_KATAS_DATA": str(course / "home" / "data"), "PYTHONPATH": str(ROOT)}
    if isolation:
        env["KATA_ISOLATION"] = isolation
    proc = subprocess.run([*_as_nobody(), sys.executable, "-m", "grader", *args, "--course", str(course / "course"),
                           "--json", "--bootstrap-servers", bootstrap], capture_output=True, text=True,
                          env=env, cwd=str(course / "home"), timeout=600)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout), proc.stderr


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
