"""What a run that ends early says: every check counted (passed, failed, did not finish, not
run), the hang that `.result()` without a timeout causes named, a fatal signal named with the
fault dump's first lines, and --file's next step naming that file."""

import shutil

import pytest
from conftest import OK_COURSE, run_grade

from grader.catalog import load_course
from grader.results import CRASHED, NOT_RUN, TIMEOUT
from grader.runner import run_checks

pytestmark = pytest.mark.broker
MORE_CHECKS = '''

def test_second(kafka, impl):
    """A second check."""
    impl.send(kafka.bootstrap_servers, kafka.create_topic(), "again")


def test_third(kafka):
    """A third check."""
'''


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(OK_COURSE, root)
    checks = root / "checks" / "kata-01-echo" / "test_echo.py"
    checks.write_text(checks.read_text() + MORE_CHECKS)
    return root


def test_a_timed_out_run_counts_every_check(course, bootstrap):
    hang = course / "impls" / "hang.py"
    result = run_grade("kata-01", "--course", str(course), "--file", str(hang), "--timeout", "5",
                       "--bootstrap-servers", bootstrap)
    assert result.returncode == 1
    out = " ".join(result.stdout.split())
    assert "TIMED OUT" in out
    assert "0 of 3 checks passed (1 did not finish, 2 not run)." in out
    assert "a future's .result() called without a timeout" in out
    assert f"Next: edit {hang}, then run `grade kata-01 --file {hang}` again." in out


def test_not_run_checks_are_results_too(course, bootstrap):
    kata = load_course(course).find("kata-01")
    result = run_checks(kata, course / "impls" / "hang.py", bootstrap, "hang", timeout_s=5)
    assert result.status == TIMEOUT
    assert [(c.name, c.status) for c in result.checks] == [
        ("test_value_arrives", TIMEOUT), ("test_second", NOT_RUN), ("test_third", NOT_RUN)]
    assert result.checks[1].title == "A second check."


def test_a_fatal_signal_is_named_with_the_fault_dump(course, bootstrap):
    kata = load_course(course).find("kata-01")
    result = run_checks(kata, course / "impls" / "aborts.py", bootstrap, "aborts")
    assert result.status == CRASHED
    assert "killed by SIGABRT while the check 'test_value_arrives' was running" in result.message
    assert "Fault dump (first lines):" in result.message and "Fatal Python error: Aborted" in result.message
    assert "aborts.py" in result.message  # the learner's frame from the dump
    assert "_pytest" not in result.message and len(result.message) < 1500
