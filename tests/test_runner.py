"""The runner against a real broker: verdicts for passing, failing and hostile learner code."""

import subprocess

import pytest
from conftest import OK_COURSE

from grader.catalog import load_course
from grader.results import CRASHED, FAIL, PASS, TIMEOUT
from grader.runner import run_checks

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def kata():
    return load_course(OK_COURSE).find("kata-01")


def impl(name):
    return OK_COURSE / "impls" / name


def test_solution_passes(kata, bootstrap):
    result = run_checks(kata, kata.solution_path, bootstrap, "solution")
    assert result.status == PASS, result.checks
    assert [c.name for c in result.checks] == ["test_value_arrives"]
    assert result.checks[0].title == "The value reaches the topic."


def test_stub_fails_with_the_teaching_message(kata, bootstrap):
    result = run_checks(kata, kata.stub_path, bootstrap, "stub")
    assert result.status == FAIL
    message = result.checks[0].message
    assert message.startswith("What the check did: called send(..., 'hello')")
    assert "What the broker showed: []" in message
    assert "Traceback" not in message


def test_hung_code_times_out_and_names_the_running_check(kata, bootstrap):
    result = run_checks(kata, impl("hang.py"), bootstrap, "hang", timeout_s=5)
    assert result.status == TIMEOUT
    assert "did not finish within 5s while the check 'test_value_arrives' was running" in result.message
    assert result.duration < 5 + 5


def test_forked_children_are_killed_with_the_run(kata, bootstrap):
    result = run_checks(kata, impl("forks.py"), bootstrap, "forks", timeout_s=5)
    assert result.status == TIMEOUT
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    assert "kafka-katas-orphan-probe" not in ps


def test_os_exit_is_reported_as_a_crash(kata, bootstrap):
    result = run_checks(kata, impl("hard_exit.py"), bootstrap, "exit")
    assert result.status == CRASHED
    assert "ended abruptly" in result.message


def test_import_error_is_explained(kata, bootstrap):
    result = run_checks(kata, impl("import_error.py"), bootstrap, "import")
    assert result.status == FAIL
    message = result.checks[0].message
    assert "import_error.py could not be imported" in message
    assert "not_a_module_anyone_has" in message


def test_megabytes_of_output_are_capped(kata, bootstrap):
    result = run_checks(kata, impl("noisy.py"), bootstrap, "noisy")
    assert result.status == FAIL
    assert len(result.checks[0].output) <= 8000
    assert "gave up after printing a lot" in result.checks[0].message


def test_known_bad_fixture_fails_in_its_named_check(kata, bootstrap):
    bad = kata.known_bad[0]
    result = run_checks(kata, kata.checks_dir / "known_bad" / bad.file, bootstrap, "bad")
    assert [c.name for c in result.failed_checks] == [bad.caught_by]


def test_unclosed_clients_and_threads_do_not_turn_a_pass_into_a_timeout(kata, bootstrap):
    result = run_checks(kata, impl("leaky.py"), bootstrap, "leaky", timeout_s=20)
    assert result.status == PASS, result.message
    assert result.duration < 15
