"""The progress store under pressure: concurrent writers, corrupt files."""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest
from conftest import OK_COURSE

from grader.catalog import load_course
from grader.progress import ProgressStore
from grader.results import CheckResult, KataResult


def _record(args):
    path, n = args
    course = load_course(OK_COURSE)
    kata = course.find("kata-01")
    status = "pass" if n % 3 == 0 else "fail"
    result = KataResult(kata.id, kata.slug, kata.title, kata.checklist, "stub", status,
                        checks=[CheckResult("test_value_arrives", status)])
    ProgressStore(course, path=path).record_result(kata, result)
    return status


def test_100_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "progress.json"
    with multiprocessing.get_context("spawn").Pool(16) as pool:
        statuses = pool.map(_record, [(path, n) for n in range(100)])
    data = json.loads(path.read_text())
    entry = data["katas"]["kata-01"]
    assert entry["attempts"] == 100
    assert len(entry["history"]) == 50  # capped, newest kept
    assert entry["first_pass"] is not None
    assert statuses.count("pass") == 34
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_file_is_backed_up_and_reported(tmp_path):
    course = load_course(OK_COURSE)
    path = tmp_path / "progress.json"
    path.write_text('{"format": 1, "katas": {"kata-01": {"attempts": 3,')  # truncated by a crash
    store = ProgressStore(course, path=path)
    _record((path, 1))
    data = store.load()
    assert data["katas"]["kata-01"]["attempts"] == 1  # a new file, started after the backup
    backups = list(tmp_path.glob("progress.json.corrupt-*"))
    assert len(backups) == 1
    assert backups[0].read_text().startswith('{"format": 1, "katas": {"kata-01": {"attempts": 3,')


def test_corrupt_file_message_names_the_backup(tmp_path):
    course = load_course(OK_COURSE)
    path = tmp_path / "progress.json"
    path.write_text("not json at all")
    store = ProgressStore(course, path=path)
    store.load()
    assert "could not be read" in store.note.message and ".corrupt-" in store.note.message
    assert "Your katas are untouched" in store.note.message


@pytest.mark.broker
def test_100_concurrent_grade_runs_record_every_verdict(tmp_path, bootstrap):
    """100 real `grade` processes at once on four katas (two solved, two not): every verdict lands in the file."""
    course = tmp_path / "course"
    shutil.copytree(OK_COURSE, course)
    names = []
    for n in range(2, 5):  # kata-02..04: copies of the echo kata under new names
        name = f"kata-0{n}-echo{n}"
        for tree in ("katas", "solutions", "checks"):
            shutil.copytree(course / tree / "kata-01-echo", course / tree / name)
        yaml_path = course / "katas" / name / "kata.yaml"
        yaml_path.write_text(yaml_path.read_text().replace("id: kata-01", f"id: kata-0{n}")
                             .replace("slug: echo", f"slug: echo{n}"))
        names.append(name)
    with open(course / "katas" / "course.yaml", "a") as fh:
        fh.writelines(f"  - {name}\n" for name in names)
    for name in ("kata-01-echo", "kata-02-echo2"):  # the learner solved these two
        shutil.copy(course / "solutions" / "kata-01-echo" / "echo.py", course / "katas" / name / "echo.py")
    for name in ["kata-01-echo", *names]:  # room for a loaded machine: a timeout is a verdict too, but a slow one
        yaml_path = course / "katas" / name / "kata.yaml"
        yaml_path.write_text(yaml_path.read_text().replace("timeout_s: 20", "timeout_s: 240"))

    env = {**os.environ, "NO_COLOR": "1", "KAFKA_KATAS_DATA": str(tmp_path / "data"),
           "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    katas = [f"kata-0{1 + n % 4}" for n in range(100)]
    procs = [subprocess.Popen([sys.executable, "-m", "grader", kata, "--course", str(course), "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for kata in katas]
    said: dict[str, Counter] = {k: Counter() for k in set(katas)}
    for kata, proc in zip(katas, procs, strict=True):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, 1), err
        said[kata][json.loads(out)["status"]] += 1
    assert said["kata-01"]["pass"] + said["kata-02"]["pass"] > 0 and said["kata-03"]["fail"] > 0

    shown = subprocess.run([sys.executable, "-m", "grader", "progress", "--json", "--course", str(course)], env=env,
                           capture_output=True, text=True)
    data = json.loads(shown.stdout)
    for kata, statuses in said.items():
        entry = data["katas"][kata]
        assert entry["attempts"] == 25
        assert Counter(h["status"] for h in entry["history"]) == statuses
    assert not list((tmp_path / "data").rglob("*.tmp"))
