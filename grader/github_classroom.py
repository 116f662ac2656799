"""GitHub Classroom autograding for a student release: one test per kata, worth the kata's points.

GitHub Classroom's command grader (classroom-resources/autograding-command-grader) awards a test's
max-score when its command exits 0, so each test is `grade KATA --json`: exit 0 only when every check
of the kata passes; the JSON on stdout is the student's detail in the Actions log. The reporter step
(autograding-grading-reporter) sums the tests into the grade GitHub Classroom shows. The same tests go
into .github/classroom/autograding.json for classrooms on the older education/autograding action.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from grader import scoring
from grader.catalog import Kata

WORKFLOW = Path(".github/workflows/classroom.yml")
AUTOGRADING = Path(".github/classroom/autograding.json")
SETUP = './dev setup && echo "$PWD/.venv/bin" >> "$GITHUB_PATH"'


def command(kata: Kata) -> str:
    return f"grade {kata.id} --json"


def _minutes(kata: Kata) -> int:
    # The kata's own timeout plus a broker start; the command grader counts whole minutes.
    return max(2, math.ceil((kata.timeout_s + 60) / 60))


def workflow(katas: list[Kata]) -> dict:
    steps = [{"name": "Check out the student's code", "uses": "actions/checkout@v4"},
             {"uses": "actions/setup-java@v4", "with": {"distribution": "temurin", "java-version": "17"}},
             {"uses": "actions/setup-python@v5", "with": {"python-version": "3.12"}},
             # Once for all tests: the pinned grader and the Kafka jars (./dev setup), `grade` on the PATH.
             {"name": "Install the grader", "run": SETUP}]
    ids = []
    for kata in katas:
        ids.append(kata.id)
        steps.append({"name": kata.id, "id": kata.id, "uses": "classroom-resources/autograding-command-grader@v1",
                      "with": {"test-name": f"{kata.id} {kata.title}", "command": command(kata),
                               "timeout": _minutes(kata), "max-score": scoring.declared_max(kata)}})
    steps.append({"name": "Autograding Reporter", "uses": "classroom-resources/autograding-grading-reporter@v1",
                  "env": {f"{i.upper()}_RESULTS": f"${{{{steps.{i}.outputs.result}}}}" for i in ids},
                  "with": {"runners": ",".join(ids)}})
    return {"name": "Autograding Tests", "on": ["push", "repository_dispatch"],
            "permissions": {"checks": "write", "actions": "read", "contents": "read"},
            "jobs": {"run-autograding-tests": {"runs-on": "ubuntu-latest",
                                               "if": "github.actor != 'github-classroom[bot]'", "steps": steps}}}


def autograding(katas: list[Kata]) -> dict:
    return {"tests": [{"name": f"{k.id} {k.title}", "setup": SETUP, "run": command(k), "input": "", "output": "",
                       "comparison": "included", "timeout": _minutes(k), "points": scoring.declared_max(k)}
                      for k in katas]}


def write(out: Path, katas: list[Kata]) -> list[Path]:
    written = []
    for rel, text in ((WORKFLOW, "# Written by `grade export github-classroom`: one test per kata.\n"
                       + yaml.safe_dump(workflow(katas), sort_keys=False, width=200)),
                      (AUTOGRADING, json.dumps(autograding(katas), indent=2) + "\n")):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
