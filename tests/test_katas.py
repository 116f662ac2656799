"""Every kata of the real course, proven against a real broker: the reference solution
passes, the untouched stub fails, every known-bad fixture fails in the check it names.

One `grade validate --all` run (the CLI instructors and CI use) feeds one test per kata,
and leaves reports/validate.json and reports/validate.xml (JUnit) behind.
"""

import json

import pytest
from conftest import ROOT, run_grade

from grader.catalog import load_course
from grader.mutation import record

REPORTS = ROOT / "reports"
KATAS = [k.id for k in load_course(ROOT).katas]

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def validation(bootstrap):
    REPORTS.mkdir(exist_ok=True)
    # Three katas at a time: their checks mostly wait on the broker (docs/benchmarks.md, P3).
    result = run_grade("validate", "--all", "--jobs", "3", "--json", "--junit", str(REPORTS / "validate.xml"),
                       "--bootstrap-servers", bootstrap, timeout=3600)
    (REPORTS / "validate.json").write_text(result.stdout)
    assert result.returncode in (0, 1), result.stderr
    return {k["kata"]: k for k in json.loads(result.stdout)["katas"]}


@pytest.mark.parametrize("kata_id", KATAS)
def test_kata_is_honest(validation, kata_id):
    report = validation[kata_id]
    assert report["ok"], "\n".join(report["problems"])
    targets = {r["target"]: r for r in report["runs"]}
    assert targets["solution"]["status"] == "pass"
    assert targets["stub"]["status"] != "pass"
    assert targets["stub"]["failed"] or targets["stub"]["status"] in ("timeout", "crashed")


def test_every_checklist_item_has_a_kata():
    course = load_course(ROOT)
    covered = {k.checklist for k in course.katas}
    missing = [i.id for i in course.checklist if i.id not in covered]
    assert not missing, f"checklist items without a kata: {missing}"


def test_generated_mutants_of_changed_katas_are_killed(bootstrap):
    """The mutation sweep for every kata whose solution, checks or kata.yaml changed since
    docs/mutation-record.json (the whole sweep is benchmarks/mutation.py); kata-01 when none did,
    so the sweep itself always runs."""
    course = load_course(ROOT)
    targets = [k.id for k in record.changed_katas(ROOT, list(course.katas))] or ["kata-01"]
    REPORTS.mkdir(exist_ok=True)
    result = run_grade("validate", *targets, "--mutants", "--jobs", "3", "--json", "--bootstrap-servers", bootstrap,
                       timeout=3000)
    (REPORTS / "mutation-ci.json").write_text(result.stdout)
    report = json.loads(result.stdout)
    weak = {k["kata"]: k["problems"] for k in report["katas"] if not k["ok"]}
    assert not weak, weak
    assert {k["kata"] for k in report["katas"]} == set(targets)
    assert all(k["mutation"]["run"] > 0 and k["mutation"]["score"] >= 0.9 for k in report["katas"])
