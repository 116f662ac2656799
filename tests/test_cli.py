"""The CLI as a user meets it: help, version, names, and errors that say what to do next."""

from conftest import OK_COURSE, ROOT, run_grade

from grader import __version__


def test_help_lists_the_commands():
    result = run_grade("--help")
    assert result.returncode == 0
    for word in ("list", "validate", "grade kata-01"):
        assert word in result.stdout


def test_version():
    result = run_grade("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_unknown_kata_exits_2_and_lists_the_katas():
    result = run_grade("kata-99", "--course", str(OK_COURSE))
    assert result.returncode == 2
    assert "There is no kata called 'kata-99'" in result.stderr
    assert "kata-01  echo" in result.stderr
    assert "Next: run `grade list`" in result.stderr


def test_no_course_found_says_where_it_looked(tmp_path):
    result = run_grade("list", cwd=tmp_path)
    assert result.returncode == 2
    assert "No course found" in result.stderr
    assert "--course DIR" in result.stderr


def test_list_shows_the_real_course():
    result = run_grade("list", cwd=ROOT / "katas")  # found by walking up
    assert result.returncode == 0
    assert "kata-01" in result.stdout and "Keep each customer's orders" in result.stdout


def test_solution_and_file_together_is_a_usage_error():
    result = run_grade("kata-01", "--course", str(OK_COURSE), "--solution", "--file", "x.py")
    assert result.returncode == 2
    assert "either --solution or --file" in result.stderr


def test_external_broker_that_does_not_answer_is_infrastructure(tmp_path):
    result = run_grade("kata-01", "--course", str(OK_COURSE), "--bootstrap-servers", "127.0.0.1:1")
    assert result.returncode == 3
    assert "No Kafka broker answered at 127.0.0.1:1" in result.stderr
    assert "not a problem with your code" in result.stderr


def test_validate_needs_names_or_all():
    result = run_grade("validate", "--course", str(OK_COURSE))
    assert result.returncode == 2
    assert "--all" in result.stderr
