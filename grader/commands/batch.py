"""`grade batch SUBMISSIONS --out DIR`: grade a class into a gradebook (engine: grader/batch.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from grader import broker as brokers
from grader import console
from grader.batch import Batch, discover, run_batch
from grader.commands.common import (
    broker_options,
    course_option,
    open_course,
    refuse_in_release,
    shared_cluster_options,
)
from grader.commands.release import select
from grader.errors import EXIT_INFRA, EXIT_PASS, InfraError, UsageError


@click.command("batch")
@click.argument("submissions", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for gradebook.csv and feedback/ (a rerun with the same folder resumes).")
@click.option("--katas", "selection", metavar="KATAS", help="Grade only these katas: kata-01..kata-06 and/or a "
              "comma list. Default: every kata of the course.")
@click.option("--jobs", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Runs at the same time on the shared broker.")
@course_option
@broker_options
@shared_cluster_options
def batch_command(submissions, out, selection, jobs, course_dir, broker_mode, bootstrap_servers):
    """Instructors: grade every student's submission (a folder or .zip each) for the chosen katas."""
    course = open_course(course_dir)
    refuse_in_release(course, "`grade batch`", "run it in the course repository the release was made from.")
    if not submissions.is_dir():
        raise UsageError(f"{submissions} is not a folder of submissions.",
                         next_step="make a folder holding one folder or .zip per student, then run "
                         f"`grade batch FOLDER --out {out}`.")
    katas = select(course, selection)
    out.mkdir(parents=True, exist_ok=True)
    batch = Batch(katas, discover(submissions, out / ".batch"), out)
    if not batch.submissions:
        raise UsageError(f"{submissions} holds no submissions.",
                         next_step="put one folder or .zip per student in it (named after the student).")
    pending = batch.pending()
    total = len(batch.submissions) * len(katas)
    console.progress(f"{len(batch.submissions)} submissions × {len(katas)} katas: {total - len(pending)} already "
                     f"graded in {out}, {len(pending)} to grade.")
    with contextlib.ExitStack() as stack:
        shared = []

        def broker_for(kata):
            if kata is not None:
                return brokers.obtain_for(kata, broker_mode, bootstrap_servers, console.progress)
            if not shared:
                shared.append(stack.enter_context(brokers.obtain(broker_mode, bootstrap_servers, console.progress)))
            return shared[0]

        bar = Progress(TextColumn("Grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=console.err, disable=not console.err.is_terminal)
        with bar:
            task = bar.add_task("grading", total=len(pending))
            infra = run_batch(batch, broker_for, jobs, on_done=lambda row: bar.advance(task))
    gradebook = batch.write_reports(infra)
    console.out.print(f"Gradebook: {gradebook} ({total - len(infra)} of {total} graded); feedback in "
                      f"{out / 'feedback'}.")
    if infra:
        console.error(InfraError(f"{len(infra)} runs were not graded because of broker or course trouble "
                                 "(not the students' code; gradebook status infra-error).",
                                 detail=next(iter(infra.values())),
                                 next_step=f"run the same `grade batch {submissions} --out {out}` again: "
                                 "it grades only what is missing."))
        raise SystemExit(EXIT_INFRA)
    raise SystemExit(EXIT_PASS)
