"""`grade export gradescope|github-classroom`: autograders for the platforms schools use
(engines: grader/gradescope.py, grader/github_classroom.py), and `grade autograde`, which the
exported Gradescope run_autograder calls."""

from __future__ import annotations

from pathlib import Path

import click

from grader import console, github_classroom
from grader import gradescope as gs
from grader.broker import jars
from grader.catalog import load_course
from grader.commands.common import course_option, open_course, refuse_in_release
from grader.commands.release import select
from grader.errors import UsageError


@click.group("export")
def export_group():
    """Instructors: autograders for Gradescope and GitHub Classroom."""


@export_group.command("gradescope")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--katas", "selection", metavar="KATAS", help="The assignment's katas: kata-01..kata-06 and/or a "
              "comma list. Default: every kata.")
@course_option
def gradescope_command(out, selection, course_dir):
    """Write a Gradescope autograder zip (setup.sh, run_autograder, hidden checks, Kafka jars) to OUT."""
    course = open_course(course_dir)
    refuse_in_release(course, "`grade export gradescope`", "run it in the course repository (it needs the hidden "
                      "checks, which a release leaves out).")
    if out.suffix != ".zip":
        raise UsageError(f"{out} should end in .zip: Gradescope takes the autograder as a zip.",
                         next_step=f"run `grade export gradescope {out.with_suffix('.zip')}`.")
    katas = select(course, selection)
    lib = Path(jars.kafka_classpath(console.progress).removesuffix("/*"))
    out.parent.mkdir(parents=True, exist_ok=True)
    info = gs.write_zip(course, katas, out, lib)
    console.out.print(f"Wrote {out}: {len(katas)} katas ({', '.join(k.id for k in katas)}), {info['jars']} Kafka "
                      f"jars, {info['bytes'] / 1e6:.0f} MB.")
    console.out.print("Next: in Gradescope, create a Programming Assignment, upload this zip under "
                      "Configure Autograder (Ubuntu 22.04 base image), and submit a solution to try it.")


@export_group.command("github-classroom")
@click.argument("release_dir", metavar="DIR", type=click.Path(file_okay=False, exists=True, path_type=Path))
def github_classroom_command(release_dir):
    """Write GitHub Classroom autograding (workflow + autograding.json) into a student release DIR."""
    course = load_course(release_dir.resolve())
    if not course.is_release:
        raise UsageError(f"{release_dir} is not a student release: GitHub Classroom grades the students' "
                         "repository, which holds the public checks only.",
                         next_step=f"make one with `grade release {release_dir}`, then run this again.")
    for path in github_classroom.write(release_dir, list(course.katas)):
        console.out.print(f"Wrote {path}")
    console.out.print("Next: commit the release as your assignment's template repository; each push a student "
                      "makes is graded, one test per kata.")


@click.command("autograde", hidden=True)
@click.argument("platform", type=click.Choice(["gradescope"]))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), required=True)
@course_option
def autograde_command(platform, root, course_dir):
    """Grade root/submission into root/results/results.json (what run_autograder runs)."""
    console.set_quiet(True)
    results = gs.grade_submission(open_course(course_dir), root)
    console.out.print(results["output"])
