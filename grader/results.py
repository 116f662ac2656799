"""Verdicts: one CheckResult per hidden check, one KataResult per graded file.

Serialisers follow the Exercism test-runner results.json (version 3) fields, plus
score and checklist item, and JUnit XML for CI systems.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from xml.etree import ElementTree as ET

from grader.errors import EXIT_FAIL, EXIT_PASS

PASS, FAIL, ERROR, SKIP = "pass", "fail", "error", "skip"
TIMEOUT, CRASHED = "timeout", "crashed"
NOT_RUN = "not-run"  # a check the run never reached (it timed out, crashed or stopped at a first failure)


@dataclass
class CheckResult:
    name: str
    status: str
    doc: str = ""
    message: str = ""
    output: str = ""
    duration: float = 0.0
    points: int = 1  # what a pass earns (kata.yaml `scoring:`)
    visibility: str = "public"  # "hidden": instructor grading only, never in a student release
    pictures: list = field(default_factory=list)  # structured evidence beside the message (grader/kit/pictures.py)

    @property
    def earned(self) -> int:
        return self.points if self.status == PASS else 0

    @property
    def title(self) -> str:
        """First line of the check's docstring: what was checked, in plain words."""
        return self.doc.splitlines()[0] if self.doc else self.name.removeprefix("test_").replace("_", " ")


@dataclass
class KataResult:
    kata_id: str
    slug: str
    title: str
    checklist: str
    target: str  # "stub", "solution" or a known-bad fixture's name
    status: str  # pass | fail | timeout | crashed
    checks: list[CheckResult] = field(default_factory=list)
    message: str = ""  # run-level explanation (timeout, crash, import error)
    duration: float = 0.0
    broker: str = ""
    # Which isolation layers held around the learner's code (grader/host/sandbox.py), as the judge saw them.
    isolation: dict = field(default_factory=lambda: {"isolation": "none"})
    # The kata's total points when the run reported no checks at all (it died before pytest collected them).
    declared_max: int = 0

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status in (FAIL, ERROR)]

    def count(self, *statuses: str) -> int:
        return sum(c.status in statuses for c in self.checks)

    @property
    def score(self) -> float:
        return round(sum(c.status == PASS for c in self.checks) / len(self.checks), 3) if self.checks else 0.0

    @property
    def points(self) -> int:
        return sum(c.earned for c in self.checks)

    @property
    def max_points(self) -> int:
        return sum(c.points for c in self.checks) if self.checks else self.declared_max

    def to_exercism(self) -> dict:
        return {
            "version": 3,
            "status": PASS if self.passed else (FAIL if self.status == FAIL else "error"),
            "message": self.message or None,
            "tests": [{"name": c.title, "test_code": c.name, "status": PASS if c.status == PASS else FAIL,
                       "message": c.message or None, "output": c.output[-500:] or None, "task_id": None,
                       "points": c.earned, "max_points": c.points, "visibility": c.visibility}
                      for c in self.checks],
            "kata": self.kata_id, "checklist": self.checklist, "target": self.target, "score": self.score,
            "points": self.points, "max_points": self.max_points,
            "duration_s": round(self.duration, 2),
            "isolation": self.isolation.get("isolation", "none"), "isolation_layers": self.isolation.get("layers", []),
            "pictures": {c.name: c.pictures for c in self.checks if c.pictures},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_exercism(), indent=2)

    def to_dict(self) -> dict:
        return asdict(self)


def junit_xml(results: list[KataResult], suite_name: str = "kafka-katas",
              extra_cases: list[tuple[str, str, float, str | None]] = ()) -> str:
    """extra_cases: (classname, name, seconds, failure text or None), e.g. one per generated mutant."""
    suite = ET.Element("testsuite", name=suite_name, tests="0", failures="0", errors="0")
    # Points ride in <properties> (suite totals, and each case's), which JUnit readers keep and ignore.
    totals = ET.SubElement(suite, "properties")
    tests = failures = 0
    for classname, name, seconds, failure in extra_cases:
        tests += 1
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")
        if failure is not None:
            failures += 1
            ET.SubElement(case, "failure", message=name).text = failure
    for result in results:
        cases = result.checks or [CheckResult(name="run", status=FAIL, message=result.message)]
        for check in cases:
            tests += 1
            case = ET.SubElement(suite, "testcase", classname=f"{result.kata_id}.{result.target}",
                                 name=check.name, time=f"{check.duration:.3f}")
            if result.checks:
                _properties(case, points=check.earned, max_points=check.points, visibility=check.visibility)
            if check.status in (FAIL, ERROR, TIMEOUT):
                failures += 1
                ET.SubElement(case, "failure", message=check.title).text = check.message
            elif check.status in (SKIP, NOT_RUN):
                ET.SubElement(case, "skipped", message=check.message)
        if result.status in (TIMEOUT, CRASHED) and result.checks:
            tests += 1
            failures += 1
            case = ET.SubElement(suite, "testcase", classname=f"{result.kata_id}.{result.target}", name="run")
            ET.SubElement(case, "failure", message=result.status).text = result.message
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    _properties(totals, points=sum(r.points for r in results), max_points=sum(r.max_points for r in results))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def _properties(parent: ET.Element, **values) -> None:
    props = parent if parent.tag == "properties" else ET.SubElement(parent, "properties")
    for name, value in values.items():
        ET.SubElement(props, "property", name=name, value=str(value))


def gradescope(result: KataResult) -> dict:
    """Gradescope autograder results.json: each check's points (kata.yaml `scoring:`, default 1);
    hidden checks show once the instructor publishes the grades."""
    return {
        "score": result.points,
        "max_score": result.max_points,
        "output": result.message or f"{result.kata_id}: {result.status}",
        "tests": [gradescope_test(c.title, c.earned, c.points, c.status == PASS, c.message, c.visibility)
                  for c in result.checks],
    }


def gradescope_test(name: str, score: int, max_score: int, passed: bool, output: str, visibility: str) -> dict:
    """One entry of Gradescope's `tests`: a hidden check shows once the instructor publishes the grades."""
    return {"name": name, "score": score, "max_score": max_score, "status": "passed" if passed else "failed",
            "output": output, "visibility": "after_published" if visibility == "hidden" else "visible"}
