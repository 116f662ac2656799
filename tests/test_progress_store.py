"""The progress store under pressure: concurrent writers, corrupt files."""

import json
import multiprocessing

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
