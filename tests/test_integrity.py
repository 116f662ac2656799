"""Hostile submissions graded on a real kata (kata-01) at every isolation layer this machine offers.

Each cheat (tests/fixtures/cheats/) is graded as the learner's own stub, the way a learner's run
is, so its verdict is recorded in the progress store: it must end not passed, and the store
must not say passed. The report must name the isolation that was in force.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, run_grade

from grader.catalog import load_course
from grader.host.sandbox import bwrap_works
from grader.progress import progress_path

pytestmark = pytest.mark.broker

CHEATS = FIXTURES / "cheats"
KATA = "kata-01-keyed-partitioning"
ROOTED = os.geteuid() == 0
# Which layers this machine offers, and the label the report must show for each.
LAYERS = {"process": "process"}
if ROOTED:
    LAYERS["user"] = "user"
if bwrap_works():
    LAYERS["user+bwrap" if ROOTED else "bwrap"] = "user+bwrap" if ROOTED else "bwrap"
# At the process layer the learner's code runs as the grader's own user (as root here): it may read
# the solution and the checks and write the progress store. docs/security.md says so; these cheats
# are only expected to fail from the unprivileged-user layer up.
NEEDS_ANOTHER_USER = {"exec_solution", "write_progress", "read_checks", "read_git"}


@pytest.fixture(scope="module")
def course():
    """A copy of the course, whose kata-01 stub each test replaces. Readable by every user, as a clone in a
    home directory usually is: what keeps the learner's uid out is the grader's doing, not the folder's."""
    top = Path(tempfile.mkdtemp(prefix="kk-integrity-"))
    top.chmod(0o755)
    root = top / "course"
    for part in ("katas", "checks", "solutions"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    # A clone: its .git holds the solutions too (the read_git cheat looks there).
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "course"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    yield root
    shutil.rmtree(top, ignore_errors=True)


def cheats() -> list[str]:
    return sorted(p.stem for p in CHEATS.glob("*.py"))


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("cheat", cheats())
def test_hostile_submission_is_never_passed(cheat, layer, course, bootstrap, tmp_path, monkeypatch):
    if layer == "process" and cheat in NEEDS_ANOTHER_USER:
        pytest.skip("at the process layer the learner's code may read and write what the grader's user may")
    data = tmp_path / "data"
    monkeypatch.setenv("KAFKA_KATAS_DATA", str(data))
    progress = progress_path(load_course(course))
    token = f"kk-orphan-{uuid.uuid4().hex[:10]}"
    source = ((CHEATS / f"{cheat}.py").read_text().replace("@ROOT@", str(course))
              .replace("@PROGRESS@", str(progress)).replace("@TOKEN@", token))
    (course / "katas" / KATA / "producer.py").write_text(source)

    result = run_grade("kata-01", "--course", str(course), "--json", "--bootstrap-servers", bootstrap,
                       env={"KAFKA_KATAS_DATA": str(data), "KATA_ISOLATION": layer}, timeout=300)

    assert result.returncode != 0, result.stdout[-2000:]
    assert len(result.stdout) < 2_000_000
    report = json.loads(result.stdout)
    assert report["status"] != "pass", report
    assert report["isolation"] == LAYERS[layer], report
    recorded = json.loads(progress.read_text()) if progress.exists() else {"katas": {}}
    entry = recorded.get("katas", {}).get("kata-01") or {}
    assert not entry.get("first_pass"), recorded
    assert entry.get("last_status") != "pass", recorded
    if cheat == "read_checks":
        assert "Hidden checks for kata-01" not in result.stdout
    if cheat == "fork_outlive":
        ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
        assert token not in ps
    if cheat == "forge_channel" or cheat == "proc_fd":
        assert all(not c["test_code"].startswith("x::") for c in report["tests"])


def test_the_same_cheats_would_pass_without_a_judge(course, tmp_path):
    """Sanity of the fixtures: the solution-exec cheat really is a working solution when it can read the file
    (so its failure above is the sandbox's doing, not a broken cheat)."""
    for cheat in ("exec_solution", "read_git"):
        source = (CHEATS / f"{cheat}.py").read_text().replace("@ROOT@", str(course))
        namespace: dict = {}
        exec(compile(source, "cheat", "exec"), namespace)
        assert callable(namespace["publish_orders"]) and "READ_ERROR" not in namespace, cheat
    solution = (course / "solutions" / KATA / "producer.py").read_text()
    assert namespace["_solution"]() == solution  # the cheat finds the reference, not some other file


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap is not usable here")
def test_the_sandbox_tmp_cannot_eat_the_machines_memory(tmp_path):
    """bwrap's /tmp is a tmpfs (memory): a host that fills it stops at its size, not at half the RAM."""
    from grader.host.sandbox import TMP_BYTES, _bwrap_args, prepare_scratch, settings
    cfg = settings(tmp_path, 60, mode="bwrap")
    home = prepare_scratch(tmp_path)
    fill = f"head -c {TMP_BYTES + (64 << 20)} /dev/zero > /tmp/f; echo $?; stat -c %s /tmp/f"
    proc = subprocess.run(["bwrap", *_bwrap_args(cfg, str(home)), "--", "sh", "-c", fill], capture_output=True,
                          text=True, timeout=60)
    status, size = proc.stdout.split()
    assert status != "0" and "No space left" in proc.stderr, proc
    assert int(size) <= TMP_BYTES
