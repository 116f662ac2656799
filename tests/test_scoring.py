"""Points and visibility per check (kata.yaml `scoring:`): a scoring name that matches no check is a
validate problem; the score reaches the terminal report, --json, JUnit and Gradescope; hidden checks run
in instructor grading. The fixture course tests/fixtures/course-classroom weighs kata-01's checks 2 (public),
3 (hidden) and 1 (hidden, by default points)."""

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
from conftest import FIXTURES, run_grade

from grader import report
from grader.catalog import load_course
from grader.results import FAIL, PASS, CheckResult, KataResult, gradescope, junit_xml

CLASSROOM = FIXTURES / "course-classroom"


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(CLASSROOM, root)
    return root


def _result(kata) -> KataResult:
    checks = [CheckResult("test_value_arrives", PASS, doc="The value reaches the topic."),
              CheckResult("test_exactly_one_record", FAIL, message="two records"),
              CheckResult("test_no_key_sent", PASS)]
    from grader import scoring

    scoring.apply(kata, checks)
    return KataResult(kata.id, kata.slug, kata.title, kata.checklist, "stub", FAIL, checks=checks)


def test_scoring_is_read_with_defaults():
    kata = load_course(CLASSROOM).find("kata-01")
    scores = {s.name: (s.points, s.visibility) for s in kata.scoring}
    assert scores == {"test_value_arrives": (2, "public"), "test_exactly_one_record": (3, "hidden"),
                      "test_no_key_sent": (1, "hidden")}
    other = load_course(CLASSROOM).find("kata-02")
    assert other.scoring == ()


def test_points_reach_every_output_format():
    kata = load_course(CLASSROOM).find("kata-01")
    result = _result(kata)
    assert (result.points, result.max_points) == (3, 6)

    data = result.to_exercism()
    assert (data["points"], data["max_points"]) == (3, 6)
    assert data["score"] == 0.667  # the existing field keeps its meaning: the share of checks passed
    assert [(t["test_code"], t["points"], t["max_points"], t["visibility"]) for t in data["tests"]] == [
        ("test_value_arrives", 2, 2, "public"), ("test_exactly_one_record", 0, 3, "hidden"),
        ("test_no_key_sent", 1, 1, "hidden")]

    suite = ET.fromstring(junit_xml([result]))
    assert {p.get("name"): p.get("value") for p in suite.find("properties")} == {"points": "3", "max_points": "6"}
    case = suite.find("testcase[@name='test_exactly_one_record']")
    assert {p.get("name"): p.get("value") for p in case.find("properties")} == {
        "points": "0", "max_points": "3", "visibility": "hidden"}
    assert case.find("failure") is not None

    gs = gradescope(result)
    assert (gs["score"], gs["max_score"]) == (3, 6)
    assert [(t["score"], t["max_score"], t["visibility"]) for t in gs["tests"]] == [
        (2, 2, "visible"), (0, 3, "after_published"), (1, 1, "after_published")]


def test_the_terminal_report_shows_the_score_beside_the_verdict():
    kata = load_course(CLASSROOM).find("kata-01")
    text = report.render(_result(kata), kata)
    assert "[bold]2 of 3 checks passed[/bold] (1 failed). [bold]Score: 3/6 points.[/bold]" in text
    assert "test_exactly_one_record (hidden)" in text


def test_a_run_without_checks_still_has_the_kata_maximum():
    from grader import scoring

    kata = load_course(CLASSROOM).find("kata-01")
    assert scoring.declared_max(kata) == 6
    empty = KataResult(kata.id, kata.slug, kata.title, kata.checklist, "stub", "crashed", declared_max=6)
    assert (empty.points, empty.max_points) == (0, 6)
    assert "[bold]Score: 0/6 points.[/bold]" in report.render(empty, kata)


def test_a_scoring_name_that_is_no_check_is_a_validate_problem(course):
    yaml_path = course / "katas" / "kata-01-echo" / "kata.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("test_no_key_sent:", "test_no_keys_sent:"))
    result = run_grade("validate", "kata-01", "--lint-only", "--course", str(course))
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert f"{yaml_path}:16: scoring names the check 'test_no_keys_sent', which is not a check function" in out
    assert "(checks: test_exactly_one_record, test_no_key_sent, test_value_arrives)" in out
    assert "Next: fix the name; an unmatched name leaves the real check public and worth 1 point." in out


def test_the_healthy_classroom_course_lints(course):
    result = run_grade("validate", "--all", "--lint-only", "--course", str(course))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("✓") == 3


@pytest.mark.broker
def test_instructor_grading_runs_the_hidden_checks_and_scores_them(course, bootstrap, tmp_path):
    env = {"KAFKA_KATAS_DATA": str(tmp_path / "data")}
    solution = run_grade("kata-01", "--solution", "--course", str(course), "--json", "--bootstrap-servers", bootstrap,
                         "--junit", str(tmp_path / "j.xml"), "--gradescope", str(tmp_path / "g.json"), env=env)
    assert solution.returncode == 0, solution.stdout + solution.stderr
    data = json.loads(solution.stdout)
    assert data["status"] == "pass" and (data["points"], data["max_points"]) == (6, 6)
    assert {t["test_code"]: t["visibility"] for t in data["tests"]} == {
        "test_value_arrives": "public", "test_exactly_one_record": "hidden", "test_no_key_sent": "hidden"}
    assert json.loads((tmp_path / "g.json").read_text())["score"] == 6
    props = ET.parse(tmp_path / "j.xml").getroot().find("properties")
    assert {p.get("name"): p.get("value") for p in props} == {"points": "6", "max_points": "6"}

    stub = run_grade("kata-01", "--course", str(course), "--bootstrap-servers", bootstrap, env=env)
    assert stub.returncode == 1, stub.stdout + stub.stderr
    assert "0 of 3 checks passed (3 failed). Score: 0/6 points." in " ".join(stub.stdout.split())
