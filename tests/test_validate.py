"""`grade validate` and `grade new` on a fake course with one planted defect per case.

The problem texts are compared with golden files (tests/golden/validate/<case>.txt);
regenerate them with UPDATE_GOLDEN=1 after an intended wording change.
"""

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import OK_COURSE, run_grade

pytestmark = pytest.mark.broker
GOLDEN = Path(__file__).parent / "golden" / "validate"
ECHO = Path("katas/kata-01-echo")
SOLUTION = Path("solutions/kata-01-echo/echo.py")
CHECKS = Path("checks/kata-01-echo")


def write(root, rel, text):
    (root / rel).write_text(text)


def defect_stub_passes(root):
    shutil.copy(root / SOLUTION, root / ECHO / "echo.py")
    write(root, ECHO / "echo.py", (root / ECHO / "echo.py").read_text() + "# TODO nothing left\n")


def defect_solution_fails(root):
    write(root, SOLUTION, "def send(bootstrap_servers, topic, value):\n    pass\n")


def defect_known_bad_passes(root):
    shutil.copy(root / SOLUTION, root / CHECKS / "known_bad" / "wrong_value.py")


def defect_caught_by_wrong_check(root):
    text = (root / CHECKS / "test_echo.py").read_text()
    write(root, CHECKS / "test_echo.py", text + '\n\ndef test_always_passes(kafka):\n    """Nothing."""\n')
    yaml = (root / ECHO / "kata.yaml").read_text().replace("caught_by: test_value_arrives",
                                                           "caught_by: test_always_passes")
    write(root, ECHO / "kata.yaml", yaml)


def defect_caught_by_unknown_check(root):
    yaml = (root / ECHO / "kata.yaml").read_text().replace("caught_by: test_value_arrives", "caught_by: test_nope")
    write(root, ECHO / "kata.yaml", yaml)


def defect_missing_stub(root):
    (root / ECHO / "echo.py").unlink()


def defect_missing_solution(root):
    (root / SOLUTION).unlink()


def defect_missing_known_bad(root):
    (root / CHECKS / "known_bad" / "wrong_value.py").unlink()


def defect_no_todo(root):
    write(root, ECHO / "echo.py", "def send(bootstrap_servers, topic, value):\n    pass\n")


def defect_readme_sections(root):
    write(root, ECHO / "README.md", "# Produce one record\nJust do it.\n")


def defect_checks_in_learner_tree(root):
    write(root, ECHO / "helper.py", "def test_sneaky():\n    assert True\n")


def defect_no_checks(root):
    (root / CHECKS / "test_echo.py").unlink()


CASES = {f.__name__.removeprefix("defect_"): f for f in [
    defect_stub_passes, defect_solution_fails, defect_known_bad_passes, defect_caught_by_wrong_check,
    defect_caught_by_unknown_check, defect_missing_stub, defect_missing_solution, defect_missing_known_bad,
    defect_no_todo, defect_readme_sections, defect_checks_in_learner_tree, defect_no_checks]}


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(OK_COURSE, root)
    return root


def validate(root, bootstrap, *extra):
    return run_grade("validate", "kata-01", "--course", str(root), "--json", "--bootstrap-servers", bootstrap, *extra)


def test_the_healthy_course_validates(course, bootstrap, tmp_path):
    result = validate(course, bootstrap, "--junit", str(tmp_path / "v.xml"))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "pass"
    assert report["katas"][0]["notes"] == ["known-bad wrong_value.py caught by test_value_arrives"]
    junit = (tmp_path / "v.xml").read_text()
    assert 'classname="kata-01.solution"' in junit and 'classname="kata-01.known-bad:wrong_value.py"' in junit


def test_a_known_bad_fixture_runs_only_the_check_that_must_catch_it(course, bootstrap, tmp_path):
    text = (course / CHECKS / "test_echo.py").read_text()
    write(course, CHECKS / "test_echo.py", text + '\n\ndef test_second(kafka):\n    """A second check."""\n')
    result = validate(course, bootstrap, "--junit", str(tmp_path / "v.xml"))
    assert result.returncode == 0, result.stdout + result.stderr
    cases = ET.parse(tmp_path / "v.xml").getroot().iter("testcase")
    ran = sorted((c.get("classname").split(".", 1)[1], c.get("name")) for c in cases)
    assert ran == [("known-bad:wrong_value.py", "test_value_arrives"),
                   ("solution", "test_second"), ("solution", "test_value_arrives"),
                   ("stub", "test_second"), ("stub", "test_value_arrives")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_planted_defect_is_caught(course, bootstrap, case):
    CASES[case](course)
    result = validate(course, bootstrap)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    problems = json.loads(result.stdout)["katas"][0]["problems"]
    text = "\n".join(problems).replace(str(course), "<course>") + "\n"
    golden = GOLDEN / f"{case}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_human_output_names_the_problem_and_next_step(course, bootstrap):
    CASES["stub_passes"](course)
    result = run_grade("validate", "kata-01", "--course", str(course), "--bootstrap-servers", bootstrap)
    assert result.returncode == 1
    assert "the untouched stub passes every check: the checks cannot fail" in result.stdout
    assert "Next: fix the problems above, then run `grade validate kata-01`." in result.stdout


def test_lint_only_needs_no_broker(course):
    CASES["no_todo"](course)
    result = run_grade("validate", "--all", "--lint-only", "--course", str(course))
    assert result.returncode == 1
    assert "the stub has no `# TODO` marker" in result.stdout


def test_new_kata_scaffold_validates_and_refuses_to_overwrite(course, bootstrap):
    created = run_grade("new", "dead-letters", "--checklist", "produce", "--title", "Dead letters",
                        "--course", str(course))
    assert created.returncode == 0, created.stderr
    assert "Registered kata-02-dead-letters in katas/course.yaml." in created.stdout
    assert "  - kata-02-dead-letters\n" in (course / "katas" / "course.yaml").read_text()
    result = run_grade("validate", "kata-02", "--course", str(course), "--json", "--bootstrap-servers", bootstrap)
    assert result.returncode == 0, result.stdout + result.stderr
    again = run_grade("new", "dead-letters", "--checklist", "produce", "--course", str(course))
    assert again.returncode == 2 and "The slug 'dead-letters' is already used by kata-02." in again.stderr
    (course / "katas" / "course.yaml").write_text(
        (course / "katas" / "course.yaml").read_text().replace("  - kata-02-dead-letters\n", ""))
    clash = run_grade("new", "dead-letters", "--checklist", "produce", "--id", "kata-02", "--course", str(course))
    assert clash.returncode == 2 and "Refusing to overwrite" in clash.stderr


def test_new_rejects_an_unknown_item(course):
    result = run_grade("new", "x", "--checklist", "nope", "--course", str(course))
    assert result.returncode == 2
    assert "'nope' is not a checklist or pattern item" in result.stderr
