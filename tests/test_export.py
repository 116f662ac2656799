"""`grade export gradescope` and `grade export github-classroom`, run the way the platforms run them.

Gradescope: the exported zip is unpacked into a simulated /autograder root (KAFKA_KATAS_AUTOGRADER_ROOT), and
its own run_autograder grades a solution (on a broker started from the jars in the zip, with an empty cache so
nothing else can supply them), a stub and a hostile file; results.json is checked against the fields of
Gradescope's documented format. The fixture course's kata-01 has hidden checks (5 of its 6 points).
GitHub Classroom: the workflow's YAML is parsed and the exact commands it names are run in a release.
"""

import json
import os
import shutil
import subprocess
import zipfile

import pytest
import yaml
from conftest import FIXTURES, ROOT, run_grade

pytestmark = pytest.mark.broker

CLASSROOM = FIXTURES / "course-classroom"
VENV_BIN = os.path.dirname(os.path.realpath(shutil.which("grade") or ROOT / ".venv" / "bin" / "grade"))
# Gradescope's results.json fields (gradescope-autograders.readthedocs.io/en/latest/specs/) and their types.
TOP = {"score": (int, float), "execution_time": (int, float), "output": str, "tests": list}
TEST = {"name": str, "score": (int, float), "max_score": (int, float), "status": str, "output": str,
        "visibility": str}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("gs") / "autograder.zip"
    result = run_grade("export", "gradescope", str(out), "--course", str(CLASSROOM), "--katas", "kata-01,kata-03")
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def run_autograder(zip_path, root, files, env):
    """Lay out /autograder as Gradescope does, then run the exported run_autograder."""
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    shutil.copyfile(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    for name, source in files.items():
        shutil.copyfile(source, root / "submission" / name)
    full_env = {**os.environ, "KAFKA_KATAS_AUTOGRADER_ROOT": str(root),
                "KAFKA_KATAS_AUTOGRADER_PYTHON": os.path.join(VENV_BIN, "python"), **env}
    run = subprocess.run(["bash", str(root / "run_autograder")], cwd=root, env=full_env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    for key, kind in TOP.items():
        assert isinstance(results[key], kind), key
    for test in results["tests"]:
        assert set(test) == set(TEST), test
        for key, kind in TEST.items():
            assert isinstance(test[key], kind), (key, test)
        assert test["status"] in ("passed", "failed") and test["visibility"] in VISIBILITIES
        assert 0 <= test["score"] <= test["max_score"]
    assert results["score"] == sum(t["score"] for t in results["tests"])
    return results


def test_the_zip_holds_what_gradescope_needs_and_no_solution(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        course_texts = [z.read(n).decode() for n in names if n.startswith("course/")]
    assert {"setup.sh", "run_autograder", "grader-src/pyproject.toml", "course/katas/course.yaml"} <= names
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    assert any(n.startswith("kafka/libs/kafka_2.13-") for n in names)  # grading never needs Maven
    assert "course/checks/kata-01-echo/test_hidden_only.py" in names  # hidden checks grade here
    assert not [n for n in names if n.startswith("course/") and ("solutions" in n or "known_bad" in n)]
    for solution in (CLASSROOM / "solutions").rglob("*.py"):  # by content, not only by name
        assert not [t for t in course_texts if solution.read_text() in t], solution
    assert not [n for n in names if "kata-02" in n]  # only the chosen katas


def test_run_autograder_grades_a_solution_with_the_bundled_jars(autograder_zip, tmp_path):
    solutions = CLASSROOM / "solutions"
    results = run_autograder(autograder_zip, tmp_path / "autograder",
                             {"echo.py": solutions / "kata-01-echo" / "echo.py",
                              "whisper.py": solutions / "kata-03-whisper" / "whisper.py"},
                             # No external or reusable broker: a local one from source/kafka/libs. (Its
                             # start-up aids are built in setup.sh; building them here would only cost CI time.)
                             {"KAFKA_BOOTSTRAP_SERVERS": "", "KAFKA_KATAS_CACHE": str(tmp_path / "cache"),
                              "KAFKA_KATAS_FAST_START": "0"})
    assert results["score"] == 7 and all(t["status"] == "passed" for t in results["tests"])
    assert not list((tmp_path / "cache").glob("kafka-*/lib"))  # no jar was fetched: the zip's were used
    seen = {t["name"].split(": ")[0] + " " + t["visibility"] for t in results["tests"]}
    assert seen == {"kata-01 visible", "kata-01 after_published", "kata-03 visible"}
    assert sum(t["max_score"] for t in results["tests"] if t["visibility"] == "after_published") == 4


def test_run_autograder_fails_a_stub_and_a_hostile_file(autograder_zip, tmp_path, bootstrap):
    results = run_autograder(autograder_zip, tmp_path / "autograder",
                             {"echo.py": CLASSROOM / "katas" / "kata-01-echo" / "echo.py",
                              "whisper.py": FIXTURES / "cheats" / "forge_channel.py"},
                             {"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    assert results["score"] == 0 and len(results["tests"]) == 4
    assert "kata-01: fail, 0/6 points" in results["output"] and "kata-03: crashed, 0/1 points" in results["output"]
    failed = [t for t in results["tests"] if t["visibility"] == "visible"]
    assert all(t["output"] for t in failed)  # each failure says why


def test_run_autograder_names_a_missing_file(autograder_zip, tmp_path):
    results = run_autograder(autograder_zip, tmp_path / "autograder",
                             {"notes.txt": CLASSROOM / "katas" / "course.yaml"}, {})
    assert results["score"] == 0
    assert [t["name"] for t in results["tests"]] == ["kata-01: submission", "kata-03: submission"]
    assert "no echo.py in submission" in results["tests"][0]["output"]
    assert results["tests"][0]["max_score"] == 6


def test_gradescope_export_wants_a_zip(tmp_path):
    result = run_grade("export", "gradescope", str(tmp_path / "ag.tar"), "--course", str(CLASSROOM))
    assert result.returncode == 2 and "should end in .zip" in result.stderr


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("ghc") / "release"
    made = run_grade("release", str(out), "--course", str(CLASSROOM))
    assert made.returncode == 0, made.stderr
    exported = run_grade("export", "github-classroom", str(out))
    assert exported.returncode == 0, exported.stderr
    return out


def test_github_classroom_commands_grade_a_release(release, bootstrap):
    workflow = yaml.safe_load((release / ".github" / "workflows" / "classroom.yml").read_text())
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    tests = [s for s in steps if s.get("uses", "").startswith("classroom-resources/autograding-command-grader")]
    # One test per released kata, worth its public points (hidden checks are not in a release).
    assert {s["id"]: s["with"]["max-score"] for s in tests} == {"kata-01": 2, "kata-02": 1, "kata-03": 1}
    reporter = steps[-1]
    assert reporter["with"]["runners"] == "kata-01,kata-02,kata-03"
    assert reporter["env"]["KATA-01_RESULTS"] == "${{steps.kata-01.outputs.result}}"
    legacy = json.loads((release / ".github" / "classroom" / "autograding.json").read_text())
    assert [t["run"] for t in legacy["tests"]] == [s["with"]["command"] for s in tests]
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "KAFKA_KATAS_DATA": str(release / ".data")}

    def run(step):
        return subprocess.run(["bash", "-c", step["with"]["command"]], cwd=release, env=env, capture_output=True,
                              text=True, timeout=step["with"]["timeout"] * 60)

    assert run(tests[0]).returncode != 0  # an untouched stub earns nothing (one is enough: it is one command)
    for kata, stub in (("kata-01-echo", "echo.py"), ("kata-02-shout", "shout.py"), ("kata-03-whisper", "whisper.py")):
        shutil.copyfile(CLASSROOM / "solutions" / kata / stub, release / "katas" / kata / stub)
    for step in tests:  # the solutions earn every test
        done = run(step)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["status"] == "pass"


def test_github_classroom_export_needs_a_release(tmp_path):
    result = run_grade("export", "github-classroom", str(CLASSROOM))
    assert result.returncode == 2 and "is not a student release" in result.stderr
