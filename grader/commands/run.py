"""`grade KATA`: grade the learner's file (or the reference solution) against a real broker."""

from __future__ import annotations

import json
from pathlib import Path

import click

from grader import console, report, run_page
from grader.broker import warmup
from grader.catalog import Kata
from grader.commands.common import (
    ascii_option,
    broker_options,
    cluster_file_of,
    course_option,
    kata_argument,
    obtain_broker_for,
    open_course,
    quiet_option,
    refuse_in_release,
    shared_cluster_options,
)
from grader.errors import InfraError
from grader.patches import materialized
from grader.progress import ProgressStore
from grader.results import gradescope, junit_xml
from grader.runner import BrokerDied, run_checks


@click.command("run")
@kata_argument
@click.option("--solution", is_flag=True, help="Grade the reference solution instead of your file.")
@click.option("--file", "file_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Grade this file instead of the kata's stub (a .patch: applied to the reference solution).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON (Exercism results v3 fields).")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write JUnit XML to this file.")
@click.option("--gradescope", "gradescope_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write Gradescope results JSON to this file.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained page of this run (each check, its text and pictures) to this file.")
@click.option("--timeout", type=click.IntRange(5, 3600), help="Seconds before your code is stopped.")
@ascii_option
@course_option
@broker_options
@shared_cluster_options
@quiet_option
def run_command(kata_name, solution, file_path, as_json, junit_file, gradescope_file, html_file, timeout, ascii_only,
                course_dir, broker_mode, bootstrap_servers, quiet):
    """Grade a kata against a real Kafka broker (KATA: kata-01, 01 or keyed-partitioning)."""
    console.set_quiet(quiet or as_json)
    course = open_course(course_dir)
    kata = course.find(kata_name)
    if solution:
        refuse_in_release(course, "`grade KATA --solution`",
                          f"grade your own code with `grade {kata.id}`; instructors grade the solution in the "
                          "course repository this release was made from.")
    if file_path and file_path.suffix == ".patch":  # a known-bad patch applies to the reference solution
        refuse_in_release(course, "`grade KATA --file X.patch`",
                          f"grade a whole file with `grade {kata.id} --file FILE.py`, or your own code with "
                          f"`grade {kata.id}`.")
    target, path = _target(kata, solution, file_path)
    warmup.defer_archive()  # a first run: the verdict first, the class-data archive after it
    with materialized(kata.solution_path, path) as graded, obtain_broker_for(kata, broker_mode,
                                                                             bootstrap_servers) as broker:
        # A student release holds only the public checks; nothing there is hidden.
        which = "checks" if course.is_release else "hidden checks"
        console.progress(f"Running the {which} of {kata.id} against {path} …")
        died = InfraError("The Kafka broker died during the run, so these results say nothing about your code.",
                          next_step=f"run `grade {kata.id}` again.")
        try:
            result = run_checks(kata, graded, broker.bootstrap_servers, target, timeout_s=timeout,
                                broker_alive=None if kata.faults else broker.process_alive,
                                cluster_file=cluster_file_of(broker))
        except BrokerDied:
            died.detail = broker.death_report()
            raise died from None
        result.broker = broker.provider
        # A dead broker makes every check fail; that is never the learner's failure.
        if not result.passed and not broker.alive():
            died.detail = broker.death_report()
            raise died
    # The run's page: kept beside the progress file for a learner's own run, and written where --html says.
    html = run_page.render(result, kata) if target == "stub" or html_file else ""
    # Only the learner's own file counts toward mastery (not the solution, not fixtures
    # graded with --file), and only once the checks ran.
    if target == "stub":
        store = ProgressStore(course)
        store.record_result(kata, result)
        # `grade progress --html` links each kata to its last run page.
        page = store.run_page_path(kata)
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(html, encoding="utf-8")
        if store.note.message:
            console.err.print(store.note.message)
    if junit_file:
        junit_file.write_text(junit_xml([result]))
    if gradescope_file:
        gradescope_file.write_text(json.dumps(gradescope(result), indent=2))
    if html_file:
        html_file.write_text(html, encoding="utf-8")
    if as_json:
        click.echo(result.to_json())
    else:
        console.out.print(report.render(result, kata, show_passed=not quiet,
                                        next_steps=_next_steps(result, kata, file_path),
                                        ascii_only=console.draws_ascii(ascii_only)),
                      end="")
    if broker.provider == "local":
        from grader.broker.local import build_archive_if_missing

        build_archive_if_missing(console.progress)
    raise SystemExit(result.exit_code)


def _target(kata: Kata, solution: bool, file_path: Path | None) -> tuple[str, Path]:
    if solution and file_path:
        raise click.UsageError("use either --solution or --file, not both.")
    if solution:
        return "solution", kata.solution_path
    if file_path:
        return str(file_path), file_path.resolve()
    return "stub", kata.stub_path


def _next_steps(result, kata: Kata, file_path: Path | None = None) -> list[str]:
    if file_path and file_path.suffix == ".patch":  # an instructor trying a known-bad mistake on the checks
        if result.passed:
            return [f"this mistake passes every check of {kata.id}: strengthen a check until it fails, "
                    f"then run `grade validate {kata.id}`."]
        return [f"the mistake fails, as a known-bad must; `grade validate {kata.id}` checks that it fails "
                "in the check kata.yaml names."]
    if result.passed:
        return ["run `grade list` to pick the next kata."]
    # The file that was graded is the one to edit: with --file, that file, not the kata's stub.
    edit, again = ((file_path, f"grade {kata.id} --file {file_path}") if file_path
                   else (f"katas/{kata.dir_name}/{kata.stub}", f"grade {kata.id}"))
    return [f"edit {edit}, then run `{again}` again.",
            f"stuck? `grade hint {kata.id}` reveals a hint."]
