"""`grade batch`: a small class of kata-01 submissions on the session's broker.

Each student's expected row is known before the run (the solution passes with every point, the stub and a
known-bad mistake do not, a forged verdict is not believed, broken submissions are rows). The batch is
interrupted after its first graded pair and rerun: the pair graded before the interrupt is not graded again
(its record is untouched) and every row ends up in the gradebook.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import markupsafe
import pytest
from conftest import FIXTURES, ROOT, run_grade

from grader.batch import Submission, discover, locate, syntax_problem
from grader.catalog import load_course
from grader.patches import apply_patch

pytestmark = pytest.mark.broker

COURSE = load_course(ROOT)
KATA = COURSE.find("kata-01")


def make_class(root):
    """submissions/ and the status each student's kata-01 row must have."""
    subs = root / "submissions"
    subs.mkdir()
    expected = {}

    def student(name, source, status, where=""):
        folder = subs / name / where
        folder.mkdir(parents=True)
        shutil.copyfile(source, folder / KATA.stub)
        expected[name] = status

    student("a-solution", KATA.solution_path, "pass")
    student("b-stub", KATA.stub_path, "fail")
    bad = apply_patch(KATA.solution_path, KATA.checks_dir / "known_bad" / "no_key.patch", root)
    student("c-known-bad", bad, "fail")
    student("d-forged", FIXTURES / "cheats" / "forge_channel.py", "crashed")  # forges verdicts, then breaks its host
    student("e-clone-layout", KATA.solution_path, "pass", where=f"katas/{KATA.dir_name}")
    student("f-wrong-place", KATA.solution_path, "missing", where="src")
    (subs / "g-syntax").mkdir()
    (subs / "g-syntax" / KATA.stub).write_text("def publish_orders(:\n")
    expected["g-syntax"] = "malformed"
    (subs / "h-not-a-zip.zip").write_text("this is not a zip archive\n")
    expected["h-not-a-zip"] = "malformed"
    with zipfile.ZipFile(subs / "i-zipped.zip", "w") as z:
        z.write(KATA.solution_path, f"i-zipped/{KATA.stub}")
    expected["i-zipped"] = "pass"
    (subs / "j-empty").mkdir()
    expected["j-empty"] = "missing"
    return subs, expected


def gradebook(out):
    with (out / "gradebook.csv").open() as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def test_batch_grades_a_class_resumes_after_an_interrupt_and_never_touches_progress(tmp_path, bootstrap):
    subs, expected = make_class(tmp_path)
    out = tmp_path / "out"
    data = tmp_path / "learner-data"
    env = {**os.environ, "NO_COLOR": "1", "KAFKA_KATAS_DATA": str(data)}
    cmd = [sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--katas", "kata-01",
           "--jobs", "1", "--bootstrap-servers", bootstrap]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = out / ".batch"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        graded = [p for p in state.rglob("kata-01.json")] if state.is_dir() else []
        # Interrupt once a pair that really ran is recorded (broken submissions are recorded instantly).
        if any(json.loads(p.read_text())["checks"] for p in graded):
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    before = {p: p.stat().st_mtime_ns for p in state.rglob("kata-01.json")}
    assert 0 < len(before) < len(expected), f"the interrupt came too late to test resuming: {len(before)}"

    second = run_grade("batch", str(subs), "--out", str(out), "--katas", "kata-01", "--jobs", "2",
                       "--bootstrap-servers", bootstrap, env={"KAFKA_KATAS_DATA": str(data)})
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{len(before)} already graded" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing graded twice
    book = gradebook(out)
    assert {s: r["status"] for s, r in book.items()} == expected  # nothing lost, every verdict right
    assert book["a-solution"]["points"] == book["a-solution"]["max_points"] != "0"
    assert book["b-stub"]["points"] == "0"
    solution = json.loads((out / "feedback" / "a-solution.json").read_text())["katas"][0]
    assert solution["isolation"] not in ("", "none")  # the sandbox was in force, and the record says which
    assert not data.exists(), "a batch must never write a progress store"
    feedback = json.loads((out / "feedback" / "f-wrong-place.json").read_text())
    assert "is in the wrong place (src/producer.py)" in feedback["katas"][0]["message"]
    text = (out / "feedback" / "h-not-a-zip.txt").read_text()
    assert "is not a zip archive" in text
    assert "kata-01: fail" in (out / "feedback" / "c-known-bad.txt").read_text()
    # HTML: an index per student linking each run's page (the known-bad's failure text on it, and the page of
    # a run that died before any check ran still says why).
    index = (out / "feedback" / "c-known-bad.html").read_text()
    assert 'href="c-known-bad/kata-01.html"' in index and '<td class="fail">fail</td>' in index
    page = (out / "feedback" / "c-known-bad" / "kata-01.html").read_text()
    bad_row = json.loads((out / "feedback" / "c-known-bad.json").read_text())["katas"][0]
    failed = [c for c in bad_row["checks"] if c["status"] == "fail"]
    assert failed and str(markupsafe.escape(failed[0]["message"].splitlines()[0])) in page
    assert "<svg" in page or "<pre>" in page
    assert "page" not in bad_row  # the JSON stays data; the page is its own file
    assert "is not a zip archive" in (out / "feedback" / "h-not-a-zip.html").read_text()


def test_broken_submissions_name_the_cause(tmp_path):
    bad = tmp_path / KATA.stub
    bad.write_text("x = 1\ndef f(:\n")
    assert syntax_problem(bad).startswith(f"{KATA.stub} line 2: ")
    bad.write_bytes(b"x = 1\x00\n")
    assert "cannot read the file" in syntax_problem(bad)
    sub = Submission("s", tmp_path / "s", root=tmp_path / "s")
    (tmp_path / "s").mkdir()
    assert locate(sub, KATA) == (None, f"no {KATA.stub} in s (expected at its top or under katas/{KATA.dir_name}/).")


def test_a_zip_that_escapes_its_folder_is_refused(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    with zipfile.ZipFile(subs / "mallory.zip", "w") as z:
        z.writestr("../../escaped.py", "print('out')\n")
    result = run_grade("batch", str(subs), "--out", str(tmp_path / "out"), "--katas", "kata-01")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "escaped.py").exists() and not (tmp_path / "out" / "escaped.py").exists()
    assert "a path outside the archive's folder" in (tmp_path / "out" / "feedback" / "mallory.txt").read_text()
    assert gradebook(tmp_path / "out")["mallory"]["status"] == "malformed"


def test_batch_refuses_a_missing_folder(tmp_path):
    result = run_grade("batch", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "is not a folder of submissions" in result.stderr


def test_two_submissions_of_one_student_are_a_row_not_a_collision(tmp_path):
    (tmp_path / "alice").mkdir()
    with zipfile.ZipFile(tmp_path / "alice.zip", "w") as z:
        z.writestr(KATA.stub, "x = 1\n")
    subs = discover(tmp_path, tmp_path / "work")
    assert [s.student for s in subs] == ["alice", "alice.zip"]
    assert subs[1].problem == f"{tmp_path / 'alice.zip'} and {tmp_path / 'alice'} are both submissions of 'alice': " \
        "keep one, then run the batch again."


def test_no_broker_is_exit_3_and_no_student_is_failed_for_it(tmp_path):
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    shutil.copyfile(KATA.solution_path, tmp_path / "subs" / "alice" / KATA.stub)
    (tmp_path / "subs" / "bob").mkdir()
    result = run_grade("batch", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--katas", "kata-01",
                       "--bootstrap-servers", "127.0.0.1:1")
    assert result.returncode == 3, result.stderr
    assert "No Kafka broker answered at 127.0.0.1:1" in result.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / ".batch").rglob("kata-01.json")]
    assert [(r["student"], r["status"]) for r in records] == [("bob", "missing")]  # alice is graded on the rerun


def test_a_course_problem_is_not_recorded_as_the_students_failure(tmp_path, bootstrap):
    course = tmp_path / "course"
    shutil.copytree(FIXTURES / "course-classroom", course)
    shutil.rmtree(course / "checks" / "kata-02-shout")
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    shutil.copyfile(course / "solutions" / "kata-02-shout" / "shout.py", tmp_path / "subs" / "alice" / "shout.py")
    out = tmp_path / "out"
    result = run_grade("batch", str(tmp_path / "subs"), "--out", str(out), "--katas", "kata-02", "--course",
                       str(course), "--bootstrap-servers", bootstrap)
    assert result.returncode == 3, result.stderr
    assert "The hidden checks of kata-02 are missing" in result.stderr
    assert gradebook(out)["alice"]["status"] == "infra-error"
    assert not list((out / ".batch").rglob("kata-02.json"))  # graded again on the rerun


def test_a_symbolic_link_is_never_graded(tmp_path):
    """A link in a student's folder could point at the reference solution on the grading machine."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / KATA.stub).symlink_to(KATA.solution_path)
    sub = Submission("s", tmp_path / "s", root=tmp_path / "s")
    assert locate(sub, KATA) == (None, f"{KATA.stub} is a symbolic link: submit the file itself.")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "katas").symlink_to(KATA.root / "solutions")
    linked = Submission("t", tmp_path / "t", root=tmp_path / "t")
    assert locate(linked, KATA)[1] == f"katas/{KATA.dir_name}/{KATA.stub} is a symbolic link: submit the file itself."


def test_hidden_checks_keep_their_evidence_from_the_student_page():
    """A hidden check's title and verdict reach the student's page; what it found does not."""
    from grader import run_page
    from grader.catalog import load_course
    from grader.results import CheckResult, KataResult

    kata = load_course(ROOT).find("kata-01")
    secret = "the check sent order 7 with key c-3 and saw it on partition 2"
    result = KataResult("kata-01", kata.slug, kata.title, kata.checklist, "batch:x", "fail", checks=[
        CheckResult("test_seen", "pass", doc="Orders arrive.", visibility="public"),
        CheckResult("test_secret", "fail", doc="Keys stay put.", message=secret, visibility="hidden",
                    pictures=[{"kind": "table", "title": secret, "columns": ["a"], "rows": [["b"]]}])])
    page = run_page.render(run_page.for_students(result), kata)
    assert "Keys stay put." in page and run_page.HIDDEN_NOTE in page
    assert "order 7" not in page
    assert result.checks[1].message == secret  # the instructor's result is untouched
