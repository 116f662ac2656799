"""Gradescope autograder: the zip `grade export gradescope` writes, and the grading run_autograder starts.

Gradescope's contract (gradescope-autograders.readthedocs.io/en/latest/specs/): the zip holds setup.sh
(run once as root when the image is built) and run_autograder (run per submission, cwd /autograder);
the zip is extracted to /autograder/source, the student's files are in /autograder/submission, and
/autograder/results/results.json is the verdict: score, execution_time, output, tests (name, score,
max_score, status, output, visibility). Hidden checks are `after_published`: students see them once
the instructor publishes grades. $KAFKA_KATAS_AUTOGRADER_ROOT relocates /autograder (tests use it).

The zip carries the grader's source, the course's chosen katas with their hidden checks (no solutions,
no known-bad mistakes: grading never needs them), and the Kafka jars, so no submission waits on Maven.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

from grader import broker as brokers
from grader.batch import Row, Submission, grade_pair, unrunnable
from grader.catalog import Course, Kata
from grader.commands.release import course_yaml
from grader.errors import InfraError
from grader.results import gradescope_test

ROOT_ENV = "KAFKA_KATAS_AUTOGRADER_ROOT"
SKIP_PARTS = {"__pycache__", "known_bad", ".pytest_cache"}

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
# Java 17 runs the bundled Kafka broker; patch and bubblewrap are the grader's sandbox tools.
apt-get install -y --no-install-recommends openjdk-17-jre-headless python3 python3-venv python3-pip patch bubblewrap
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --no-cache-dir /autograder/source/grader-src
# One broker start now puts its start-up aids (storage template, class-data archive) into the image,
# so no submission pays for them.
export KAFKA_HOME=/autograder/source/kafka KAFKA_KATAS_CACHE=/autograder/cache KAFKA_KATAS_DOCKER=0
/autograder/venv/bin/python -m grader broker up
/autograder/venv/bin/python -m grader broker down
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission (cwd /autograder). Exit 3 means infrastructure trouble:
# no results.json is written, so Gradescope reports a failed autograder run, never a zero for the student.
set -u
ROOT="${KAFKA_KATAS_AUTOGRADER_ROOT:-/autograder}"
PYTHON="${KAFKA_KATAS_AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
export KAFKA_HOME="$ROOT/source/kafka" KAFKA_KATAS_CACHE="${KAFKA_KATAS_CACHE:-$ROOT/cache}"
export KAFKA_KATAS_DOCKER=0 NO_COLOR=1
exec "$PYTHON" -m grader autograde gradescope --root "$ROOT" --course "$ROOT/source/course"
"""


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP_PARTS & set(path.relative_to(folder).parts) and path.suffix != ".pyc":
            yield path


def write_zip(course: Course, katas: list[Kata], out: Path, jar_dir: Path | None) -> dict:
    """The autograder zip; returns what went in (file count, jar count, bytes)."""
    grader_root = Path(__file__).resolve().parent
    jars = sorted(jar_dir.glob("*.jar")) if jar_dir else []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16  # executable once Gradescope extracts it
            z.writestr(info, text)
        z.write(grader_root.parent / "pyproject.toml", "grader-src/pyproject.toml")
        z.writestr("grader-src/README.md", "The kafka-katas grader, bundled for a Gradescope autograder.\n")
        for path in _files(grader_root):
            z.write(path, f"grader-src/grader/{path.relative_to(grader_root)}")
        z.writestr("course/katas/course.yaml", course_yaml(course, katas))
        for kata in katas:
            for path in _files(kata.kata_dir):
                z.write(path, f"course/katas/{kata.dir_name}/{path.relative_to(kata.kata_dir)}")
            for path in _files(kata.checks_dir):
                z.write(path, f"course/checks/{kata.checks}/{path.relative_to(kata.checks_dir)}")
        for jar in jars:  # jars are zips already: stored, not compressed again
            z.write(jar, f"kafka/libs/{jar.name}", compress_type=zipfile.ZIP_STORED)
        count = len(z.infolist())
    return {"files": count, "jars": len(jars), "bytes": out.stat().st_size}


def _tests(row: Row) -> list[dict]:
    if not row.checks:  # nothing ran: one test carrying the kata's points and the reason
        return [gradescope_test(f"{row.kata}: submission", 0, row.max_points, False, row.message, "visible")]
    return [gradescope_test(f"{row.kata}: {c['title']}", c["points"], c["max_points"], c["status"] == "pass",
                            "" if c["status"] == "pass" else (c["message"] or row.message or c["status"]),
                            c["visibility"])
            for c in row.checks]


def grade_submission(course: Course, root: Path) -> dict:
    """Grade root/submission for every kata of the exported course into results.json (returned too)."""
    began = time.monotonic()
    sub = Submission("submission", root / "submission", root=root / "submission")
    if not sub.root.is_dir():
        raise InfraError(f"{sub.root} does not exist: Gradescope puts the student's files there.",
                         next_step=f"run run_autograder inside Gradescope, or set {ROOT_ENV} to a folder "
                         "holding submission/.")
    rows = []
    shared = None
    try:
        for kata in course.katas:
            if row := unrunnable(sub, kata):  # a missing or unreadable file needs no broker
                rows.append(row)
                continue
            if kata.needs_own_cluster:
                with brokers.obtain_for(kata, "auto", None, lambda m: None) as cluster:
                    rows.append(grade_pair(sub, kata, cluster))
                continue
            if shared is None:
                shared = brokers.start("auto", None, lambda m: None)
            rows.append(grade_pair(sub, kata, shared))
    finally:
        if shared is not None:
            shared.stop()
    lines = [f"{r.kata}: {r.status}, {r.points}/{r.max_points} points" + (f" — {r.message.splitlines()[0]}"
                                                                        if r.message and not r.checks else "")
             for r in rows]
    results = {"score": sum(r.points for r in rows), "execution_time": round(time.monotonic() - began),
               "output": "\n".join(lines), "tests": [t for r in rows for t in _tests(r)]}
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results
