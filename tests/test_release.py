"""`grade release OUT`: a student course that grades for real and holds no instructor content.

The proof compares contents, not names: every distinctive line of every solution and known-bad mistake,
every known-bad `why`, and the source of every hidden check function (found here with ast, independently of
the release code) must be absent from every released file."""

import ast
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, ROOT, run_grade

from grader import __version__
from grader.catalog import load_course
from grader.commands.release import strip_hidden
from grader.errors import CourseError

CLASSROOM = FIXTURES / "course-classroom"
MIN_LINE = 12  # shorter lines (`pass`, `return x`) are too common to prove anything


def release(course: Path, out: Path, *extra: str):
    return run_grade("release", str(out), "--course", str(course), *extra)


@pytest.fixture(scope="module")
def course_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "student"
    result = release(ROOT, out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def classroom_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "classroom"
    result = release(CLASSROOM, out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def released_lines(out: Path) -> tuple[set[str], list[str]]:
    """Every line of every released file, the members of the bundled grader's wheel included."""
    texts = []
    for p in out.rglob("*"):
        if p.suffix == ".whl":
            with zipfile.ZipFile(p) as whl:
                texts += [whl.read(n).decode("utf-8", errors="replace") for n in whl.namelist()]
        elif p.is_file():
            texts.append(p.read_text(encoding="utf-8", errors="replace"))
    return {line.strip() for t in texts for line in t.splitlines()}, texts


def public_lines(course: Path) -> set[str]:
    """Lines the release may carry: the learner's tree and the check files (hidden functions included
    here on purpose: a line a hidden check shares with a public one proves nothing)."""
    files = [p for tree in ("katas", "checks") for p in (course / tree).rglob("*")
             if p.is_file() and "known_bad" not in p.parts and "__pycache__" not in p.parts]
    files += [p for p in (ROOT / "grader").rglob("*") if p.is_file() and "__pycache__" not in p.parts]  # the wheel
    return {line.strip() for p in files for line in p.read_text(errors="replace").splitlines()}


def distinctive(lines, allowed: set[str]) -> set[str]:
    return {s for s in (line.strip() for line in lines) if len(s) >= MIN_LINE and s not in allowed}


def test_no_solution_or_known_bad_content_in_the_release(course_release):
    course = load_course(ROOT)
    allowed = public_lines(ROOT)
    released, texts = released_lines(course_release)
    for kata in course.katas:
        solution = distinctive(kata.solution_path.read_text().splitlines(), allowed)
        assert len(solution) >= 3, f"{kata.id}: too few distinctive solution lines to prove anything"
        assert not solution & released, f"{kata.id}: solution lines in the release: {solution & released}"
        for bad in kata.known_bad:
            text = (kata.checks_dir / "known_bad" / bad.file).read_text()
            added = [line[1:] for line in text.splitlines() if line.startswith("+") and not line.startswith("+++")] \
                if bad.file.suffix == ".patch" else text.splitlines()
            leaked = distinctive(added, allowed) & released
            assert not leaked, f"{kata.id}: known-bad {bad.file} lines in the release: {leaked}"
            assert not any(bad.why in t for t in texts), f"{kata.id}: the why of {bad.file} is in the release"
        # The learner's file is released exactly as it is.
        assert (course_release / "katas" / kata.dir_name / kata.stub).read_bytes() == kata.stub_path.read_bytes()


def test_the_release_leaves_instructor_files_behind(course_release):
    names = {p.relative_to(course_release).as_posix() for p in course_release.rglob("*")}
    assert not any(n.startswith(("solutions", "docs", "grader", "tests", ".ci", "benchmarks")) for n in names)
    assert not any("known_bad" in n or n.endswith((".patch", ".pyc")) for n in names)
    for kata_yaml in course_release.glob("katas/*/kata.yaml"):
        data = yaml.safe_load(kata_yaml.read_text())
        assert not {"known_bad", "equivalent_mutants", "solution"} & set(data), kata_yaml
    # kafka-katas is not on PyPI: the release carries the grader that made it.
    wheel = f"vendor/kafka_katas-{__version__}-py3-none-any.whl"
    assert (course_release / "requirements.txt").read_text().splitlines()[-1] == f"./{wheel}"
    with zipfile.ZipFile(course_release / wheel) as whl:
        names = set(whl.namelist())
    assert {"grader/cli.py", "grader/kit/__init__.py", "grader/templates/release/dev.j2",
            "grader/broker/pom.xml"} <= names
    assert not any(n.startswith(("solutions/", "checks/", "katas/", "tests/")) for n in names)
    assert "grade release" not in (course_release / "README.md").read_text()  # the student README, not ours
    dev = course_release / "dev"
    assert os.access(dev, os.X_OK)
    assert subprocess.run(["bash", "-n", str(dev)]).returncode == 0
    usage = subprocess.run([str(dev), "help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "./dev grade kata-01     grade your code for kata-01" in usage.stdout
    marker = yaml.safe_load((course_release / "katas" / "release.yaml").read_text())
    assert marker["grader_version"] == __version__ and len(marker["katas"]) == len(load_course(ROOT).katas)


def _hidden_functions(course: Path):
    """(hidden function source, docstring, the public code of its file) for every hidden check."""
    for kata in load_course(course).katas:
        hidden = {s.name for s in kata.scoring if s.hidden}
        for path in kata.checks_dir.glob("test_*.py"):
            source = path.read_text()
            tree = ast.parse(source)
            public = "\n".join(ast.get_source_segment(source, n) for n in tree.body
                               if not (isinstance(n, ast.FunctionDef) and n.name in hidden))
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name in hidden:
                    yield ast.get_source_segment(source, node), ast.get_docstring(node), public


def test_no_hidden_check_content_in_the_release(classroom_release):
    released, texts = released_lines(classroom_release)
    found = list(_hidden_functions(CLASSROOM))
    assert len(found) == 2
    # A line the hidden checks share with public code (any check file's, or the learner's tree) proves nothing.
    allowed = {line.strip() for _, _, public in found for line in public.splitlines()}
    allowed |= {line.strip() for p in (CLASSROOM / "katas").rglob("*") if p.is_file()
                for line in p.read_text().splitlines()}
    for source, doc, _ in found:
        assert not any(source in t for t in texts)
        assert not any(doc in t for t in texts), doc
        unique = distinctive(source.splitlines(), allowed)
        assert len(unique) >= 3, unique
        assert not unique & released, unique & released
    # The comments around a hidden check go with it.
    assert not any("Held back:" in t or "Secret tail comment" in t for t in texts)
    checks = classroom_release / "checks" / "kata-01-echo"
    assert sorted(p.name for p in checks.iterdir()) == ["test_echo.py"]  # the hidden-only file is left out
    kept = checks.joinpath("test_echo.py").read_text()
    assert "def _values(kafka, topic):" in kept and "def test_value_arrives(kafka, impl):" in kept
    kata_yaml = yaml.safe_load((classroom_release / "katas" / "kata-01-echo" / "kata.yaml").read_text())
    assert kata_yaml["scoring"] == {"test_value_arrives": {"points": 2}}
    marker = yaml.safe_load((classroom_release / "katas" / "release.yaml").read_text())
    assert marker["held_back"] == {"kata-01": 2}


@pytest.mark.parametrize("command,phrase,next_step", [
    (("kata-01", "--solution"), "`grade KATA --solution` is an instructor command",
     "Next: grade your own code with `grade kata-01`; instructors grade the solution in the course repository"),
    (("kata-01", "--file", "x.patch"), "`grade KATA --file X.patch` is an instructor command",
     "Next: grade a whole file with `grade kata-01 --file FILE.py`, or your own code with `grade kata-01`."),
    (("validate", "--all"), "`grade validate` is an instructor command",
     "Next: grade your own code with `grade KATA`; instructors validate katas in the course repository"),
    (("new", "x", "--checklist", "produce"), "`grade new` is an instructor command",
     "Next: instructors add katas in the course repository this release was made from"),
    (("solution", "kata-01", "--force"), "`grade solution` is an instructor command",
     "Next: `grade hint kata-01` reveals the next hint"),
    (("release", "elsewhere"), "`grade release` is an instructor command",
     "Next: run `grade release OUT` in the course repository this release was made from."),
    (("batch", ".", "--out", "grades"), "`grade batch` is an instructor command",
     "Next: run it in the course repository the release was made from."),
    (("export", "gradescope", "ag.zip"), "`grade export gradescope` is an instructor command",
     "Next: run it in the course repository (it needs the hidden checks, which a release leaves out)."),
])
def test_instructor_commands_say_so_in_a_release(classroom_release, command, phrase, next_step):
    result = run_grade(*command, "--course", str(classroom_release))
    assert result.returncode == 2, result.stdout + result.stderr
    err = " ".join(result.stderr.split())
    assert phrase + ", and this is a student release of the course (it holds no reference solutions" in err
    assert next_step in err
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("selection,ids", [
    ("kata-01..kata-02", ["kata-01", "kata-02"]),
    ("kata-03,kata-01", ["kata-01", "kata-03"]),
    ("02..03,1", ["kata-01", "kata-02", "kata-03"]),
    ("whisper", ["kata-03"]),
])
def test_katas_selects_a_subset_in_course_order(tmp_path, selection, ids):
    out = tmp_path / "out"
    result = release(CLASSROOM, out, "--katas", selection)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [k.id for k in load_course(out).katas] == ids
    assert sorted(p.name.split("-", 2)[0] + "-" + p.name.split("-", 2)[1] for p in (out / "checks").iterdir()) == ids
    # kata-02 and kata-03 require kata-01: a release without it drops the requirement.
    for kata in load_course(out).katas:
        assert set(kata.requires) <= set(ids)


@pytest.mark.parametrize("selection,phrase,next_step", [
    ("kata-03..kata-01", "--katas kata-03..kata-01: kata-03 comes after kata-01 in the course.",
     "Next: write the range in course order: --katas kata-01..kata-03."),
    ("kata-01,,kata-02", "--katas 'kata-01,,kata-02' has an empty entry.", "Next: write ids separated by single"),
    ("kata-01..kata-09", "There is no kata called 'kata-09'.", "Next: run `grade list`"),
])
def test_a_bad_selection_is_refused_and_writes_nothing(tmp_path, selection, phrase, next_step):
    out = tmp_path / "out"
    result = release(CLASSROOM, out, "--katas", selection)
    assert result.returncode == 2, result.stdout + result.stderr
    assert phrase in result.stderr and next_step in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = release(CLASSROOM, out)
    assert result.returncode == 2
    assert f"{out} already exists and is not an empty folder; a release never overwrites files." in result.stderr
    assert "Next: pick a new folder" in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert release(CLASSROOM, empty).returncode == 0 and (empty / "katas" / "release.yaml").is_file()


def test_a_release_inside_the_course_tree_is_refused(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(CLASSROOM, course)
    result = release(course, course / "katas" / "student")
    assert result.returncode == 2
    assert "is inside the course's katas/ folder; the release would copy itself." in result.stderr
    assert not (course / "katas" / "student").exists()


def _broken(tmp_path, old: str, new: str, rel="katas/kata-01-echo/kata.yaml") -> Path:
    course = tmp_path / "course"
    shutil.copytree(CLASSROOM, course)
    path = course / rel
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    return course


@pytest.mark.parametrize("old,new,rel,phrase,next_step", [
    ("test_no_key_sent:", "test_no_keys_sent:", "katas/kata-01-echo/kata.yaml",
     "scoring names the check 'test_no_keys_sent', which is not a check function in",
     "Next: fix the name; an unmatched name leaves the real check public and worth 1 point. Then run `grade release`"),
    ("test_value_arrives: {points: 2}", "test_value_arrives: {points: 2, visibility: hidden}",
     "katas/kata-01-echo/kata.yaml", "kata-01 has no public checks: every check is hidden",
     "Next: make at least one check public"),
    ('    values = _values(kafka, topic)\n', '    values = _values(kafka, topic)\n    test_exactly_one_record\n',
     "checks/kata-01-echo/test_echo.py", "cannot cut the hidden checks out cleanly: the code left behind uses "
     "test_exactly_one_record", "Next: move what public checks share into a helper function"),
])
def test_a_course_problem_is_refused_and_writes_nothing(tmp_path, old, new, rel, phrase, next_step):
    course = _broken(tmp_path, old, new, rel)
    _assert_refused(tmp_path, course, phrase, next_step)


def test_a_stub_that_is_the_solution_is_refused(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(CLASSROOM, course)
    shutil.copy(course / "solutions" / "kata-02-shout" / "shout.py", course / "katas" / "kata-02-shout" / "shout.py")
    _assert_refused(tmp_path, course, "Not released: katas/kata-02-shout/shout.py would be a copy of",
                    "Next: put the learner's stub back in")


def _assert_refused(tmp_path, course, phrase, next_step):
    out = tmp_path / "out"
    result = release(course, out)
    assert result.returncode == 2, result.stdout + result.stderr
    err = " ".join(result.stderr.split())
    assert phrase in err and next_step in err
    assert "Traceback" not in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["course"]


def test_grader_requirement_is_checked(tmp_path):
    bad = release(CLASSROOM, tmp_path / "a", "--grader", "kafka-katas==")
    assert bad.returncode == 2 and "--grader 'kafka-katas==' is not a pip requirement" in bad.stderr
    other = release(CLASSROOM, tmp_path / "b", "--grader", "requests==2.0")
    assert other.returncode == 2 and "installs 'requests', not the grader (kafka-katas)" in other.stderr
    spec = "kafka-katas @ git+https://example.org/kafka-katas@v0.1.0"
    good = release(CLASSROOM, tmp_path / "c", "--grader", spec)
    assert good.returncode == 0 and (tmp_path / "c" / "requirements.txt").read_text().endswith(spec + "\n")


SOURCE = '''import pytest


def helper():
    return 1


def test_public():
    assert helper() == 1


# About the hidden one.
# Second line about it.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
async def test_hidden():
    assert helper() == 1
    # trailing secret


def test_public_two():
    """Kept."""
'''


def test_strip_hidden_cuts_decorators_and_comments_and_keeps_the_rest(tmp_path):
    path = tmp_path / "test_x.py"
    path.write_text(SOURCE)
    text = strip_hidden(path, SOURCE, {"test_hidden"})
    assert "secret" not in text and "About the hidden" not in text and "@pytest.mark" not in text
    assert "test_hidden" not in text
    assert text == SOURCE.split("# About")[0] + SOURCE.split("# trailing secret\n\n\n")[1]
    assert strip_hidden(path, SOURCE, {"test_other"}) == SOURCE
    # Blank lines inside a string stay as they are; only the cut's own blank lines go.
    spaced = SOURCE.replace('"""Kept."""', '"""Kept.\n\n\n\n\nStill kept."""')
    path.write_text(spaced)
    assert '"""Kept.\n\n\n\n\nStill kept."""' in strip_hidden(path, spaced, {"test_hidden"})
    assert strip_hidden(path, SOURCE, {"test_public", "test_hidden", "test_public_two"}) is None


def test_strip_hidden_keeps_the_comment_that_ends_the_function_before(tmp_path):
    source = "def test_public():\n    x = 1\n    # the public check's last word\n# about the hidden one\n" \
             "def test_hidden():\n    pass\n"
    path = tmp_path / "test_x.py"
    path.write_text(source)
    kept = strip_hidden(path, source, {"test_hidden"})
    assert kept == "def test_public():\n    x = 1\n    # the public check's last word\n"


def test_strip_hidden_reports_a_check_file_that_does_not_parse(tmp_path):
    path = tmp_path / "test_x.py"
    path.write_text("def test_a(:\n")
    with pytest.raises(CourseError, match=re.escape(f"{path}:1: this check file is not valid Python")):
        strip_hidden(path, path.read_text(), {"test_a"})


@pytest.mark.broker
def test_a_student_clone_grades_kata_01(course_release, bootstrap, tmp_path):
    """The student's view: the stub fails, the reference solution (copied in) passes, on public checks."""
    env = {"KAFKA_KATAS_DATA": str(tmp_path / "data")}
    clone = tmp_path / "clone"
    shutil.copytree(course_release, clone)
    kata = load_course(ROOT).find("kata-01")
    stub = run_grade("kata-01", "--course", str(clone), "--bootstrap-servers", bootstrap, env=env)
    assert stub.returncode == 1, stub.stdout + stub.stderr
    assert "checks passed" in stub.stdout and "Score: 0/" in stub.stdout
    shutil.copy(kata.solution_path, clone / "katas" / kata.dir_name / kata.stub)
    passed = run_grade("kata-01", "--course", str(clone), "--bootstrap-servers", bootstrap, "--json", env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    data = json.loads(passed.stdout)
    assert data["status"] == "pass" and data["points"] == data["max_points"] > 0


@pytest.mark.broker
def test_a_release_grades_on_public_checks_only(classroom_release, bootstrap, tmp_path):
    env = {"KAFKA_KATAS_DATA": str(tmp_path / "data")}
    clone = tmp_path / "clone"
    shutil.copytree(classroom_release, clone)
    shutil.copy(CLASSROOM / "solutions" / "kata-01-echo" / "echo.py", clone / "katas" / "kata-01-echo" / "echo.py")
    result = run_grade("kata-01", "--course", str(clone), "--bootstrap-servers", bootstrap, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert [t["test_code"] for t in data["tests"]] == ["test_value_arrives"]
    assert (data["points"], data["max_points"]) == (2, 2)


def test_a_malformed_release_marker_is_a_clear_error(tmp_path, classroom_release):
    clone = tmp_path / "clone"
    shutil.copytree(classroom_release, clone)
    marker = clone / "katas" / "release.yaml"
    marker.write_text(marker.read_text() + "held_bak: {}\n")
    result = run_grade("list", "--course", str(clone))
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert f"{marker}:" in first and "unknown field 'held_bak'" in first
    assert "Next: did you mean 'held_back'?" in result.stderr


@pytest.mark.broker
def test_a_fresh_student_clone_installs_the_bundled_grader_and_grades(tmp_path, bootstrap):
    """The student's first two commands, for real: `./dev grade kata-01` makes .venv, installs the grader from
    the wheel the release carries (no package index has it) and its dependencies, and grades the stub."""
    out = tmp_path / "student"
    made = release(ROOT, out, "--katas", "kata-01")
    assert made.returncode == 0, made.stdout + made.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_KATAS_DATA": str(tmp_path / "data"), "NO_COLOR": "1",
                "PATH": os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT)))})
    graded = subprocess.run([str(out / "dev"), "grade", "kata-01"], cwd=out, env=env, capture_output=True, text=True,
                            timeout=600)
    assert graded.returncode == 1, graded.stdout + graded.stderr[-3000:]
    assert "Installing the grader (./vendor/kafka_katas-" in graded.stderr
    assert re.search(r"0 of \d+ checks passed .*Score: 0/\d+ points", graded.stdout), graded.stdout
    installed = subprocess.run([str(out / ".venv" / "bin" / "python"), "-c", "import grader; print(grader.__file__)"],
                               capture_output=True, text=True, env=env, cwd=tmp_path)
    assert str(out / ".venv") in installed.stdout  # the wheel's copy, not this checkout's


def test_a_grader_without_its_source_tree_asks_for_a_requirement(tmp_path, monkeypatch):
    from grader import wheel
    from grader.errors import UsageError

    monkeypatch.setattr(wheel, "SOURCE", tmp_path)  # as when the grader runs from an installed wheel
    with pytest.raises(UsageError) as refused:
        wheel.cached()
    assert "installed from a package, not a source tree, so it cannot bundle itself" in str(refused.value)
    assert "--grader 'kafka-katas @ git+https://HOST/REPO@TAG'" in refused.value.next_step
