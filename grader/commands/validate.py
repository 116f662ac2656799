"""`grade validate`: prove katas honest (instructors and CI)."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from grader import broker as brokers
from grader import clientconfig, console, services, timings
from grader.commands.common import (
    broker_options,
    cluster_file_of,
    course_option,
    obtain_broker,
    open_course,
    quiet_option,
    refuse_in_release,
    shared_cluster_options,
)
from grader.errors import EXIT_FAIL, EXIT_PASS, InfraError
from grader.results import junit_xml
from grader.runner import BrokerDied
from grader.validation import KataValidation, lint, validate_kata, validate_mutants


@click.command("validate")
@click.argument("kata_names", nargs=-1, metavar="[KATA]...")
@click.option("--all", "all_katas", is_flag=True, help="Validate every kata of the course.")
@click.option("--lint-only", is_flag=True, help="Only check files and texts; start no broker.")
@click.option("-j", "--jobs", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Validate this many katas at once (their checks mostly wait on the broker: 3 suits 2 cores).")
@click.option("--mutants", is_flag=True,
              help="Also run the checks against generated mutants of each solution and report a mutation score.")
@click.option("--mutant", "mutant_ids", multiple=True, metavar="ID",
              help="With --mutants: run only this mutant (repeatable), e.g. one that survived.")
@click.option("--list-mutants", is_flag=True, help="List the generated mutants (id, line, change); run nothing.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=None,
              help="Mutation score a kata needs with --mutants (default 0.90).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every check run as JUnit XML.")
@course_option
@broker_options
@shared_cluster_options
@quiet_option
def validate_command(kata_names, all_katas, lint_only, jobs, mutants, mutant_ids, list_mutants, min_score, as_json,
                     junit_file, course_dir, broker_mode, bootstrap_servers, quiet):
    """Prove katas honest: solution passes, stub fails, known-bad mistakes fail (and, with --mutants,
    generated mutants of the solution fail)."""
    console.set_quiet(quiet or as_json)
    course = open_course(course_dir)  # schema errors surface here, with file and line
    refuse_in_release(course, "`grade validate`",
                      "grade your own code with `grade KATA`; instructors validate katas in the course "
                      "repository this release was made from.")
    if not kata_names and not all_katas:
        raise click.UsageError("name katas to validate, or pass --all.")
    katas = list(course.katas) if all_katas else [course.find(n) for n in kata_names]
    _coverage_warnings(course)
    if list_mutants:
        from grader.mutation.report import print_mutant_list

        print_mutant_list(katas, as_json)
        raise SystemExit(EXIT_PASS)
    if mutant_ids and not mutants:
        raise click.UsageError("--mutant ID goes with --mutants.")
    sweep = {"jobs": jobs, "only": tuple(mutant_ids), "min_score": min_score,
             "gate": threading.BoundedSemaphore(jobs)} if mutants else None
    if lint_only:
        problems = {k.id: lint(k, course) for k in katas}
        _print_lint(problems, as_json)
        raise SystemExit(EXIT_FAIL if any(problems.values()) else EXIT_PASS)
    order = {k.id: n for n, k in enumerate(katas)}
    # Threads are enough: each validation waits on its own pytest subprocesses, mostly for the
    # broker. Longest first (by the last run's times; katas with a cluster of their own, which start
    # it inside their job, count as long when unknown), so the pool never ends with one long kata
    # running alone.
    katas = timings.longest_first(katas, timings.load(course.title))
    shared = [k for k in katas if not clientconfig.needs_local_broker(k)]
    own_servers = None if broker_mode == "auto" else bootstrap_servers
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(obtain_broker(broker_mode, bootstrap_servers)) if shared else None
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=jobs))
        futures = [pool.submit(_validate_own, k, course, broker_mode, own_servers, as_json, sweep)
                   if clientconfig.needs_local_broker(k)
                   else pool.submit(_validate_on, k, course, broker, as_json, sweep)
                   for k in katas]
        try:
            validations = sorted((f.result() for f in futures), key=lambda v: order[v.kata.id])
        except BaseException:  # a dead broker or Ctrl-C: report it now, do not start the katas still queued
            for f in futures:
                f.cancel()
            raise
    timings.save(course.title, {v.kata.id: sum(r.duration for r in v.runs)
                                + (v.mutation.seconds if v.mutation else 0) for v in validations})
    if junit_file:
        from grader.mutation.report import junit_cases

        junit_file.write_text(junit_xml([r for v in validations for r in v.runs], "kafka-katas-validate",
                                        extra_cases=junit_cases(validations)))
    if as_json:
        click.echo(json.dumps({"status": "pass" if all(v.ok for v in validations) else "fail",
                               "katas": [{"kata": v.kata.id, "ok": v.ok, "problems": v.problems, "notes": v.notes,
                                          "runs": [{"target": r.target, "status": r.status,
                                                    "failed": [c.name for c in r.failed_checks],
                                                    "duration_s": round(r.duration, 2)} for r in v.runs],
                                          **({"mutation": v.mutation.to_dict()} if v.mutation else {})}
                                         for v in validations]}, indent=2))
    elif all(v.ok for v in validations):
        if mutants:
            from grader.mutation.report import print_score_table

            print_score_table(validations)
        console.out.print(f"[bold green]All {len(validations)} katas validated.[/bold green]")
    else:
        bad = [v.kata.id for v in validations if not v.ok]
        if mutants:
            from grader.mutation.report import print_score_table

            print_score_table(validations)
        console.out.print(f"[bold red]{len(bad)} of {len(validations)} katas failed validation:[/bold red] "
                          f"{', '.join(bad)}\nNext: fix the problems above, then run `grade validate {bad[0]}`.")
    raise SystemExit(EXIT_PASS if all(v.ok for v in validations) else EXIT_FAIL)


def _validate_own(kata, course, mode: str, bootstrap_servers: str | None, as_json: bool, sweep: dict | None):
    unfit = _lint_failed(kata, course, as_json)
    if unfit:
        return unfit
    # No spinner here: this may run beside other jobs, and the terminal holds one live display.
    with brokers.obtain_for(kata, mode, bootstrap_servers, console.progress) as broker:
        return _validate_on(kata, course, broker, as_json, sweep)


def _lint_failed(kata, course, as_json: bool) -> KataValidation | None:
    """A kata whose files are wrong runs no check: starting its cluster or services would only cost time."""
    problems = lint(kata, course)
    if not problems:
        return None
    v = KataValidation(kata, problems=problems)
    if not as_json:
        _print_one(v)
    return v


def _validate_on(kata, course, broker, as_json: bool, sweep: dict | None = None):
    console.progress(f"Validating {kata.id} ({kata.slug})…")
    unfit = _lint_failed(kata, course, as_json)
    if unfit:
        return unfit
    with services.started(kata, broker.bootstrap_servers, console.progress):
        return _validate_with_services(kata, course, broker, as_json, sweep)


def _validate_with_services(kata, course, broker, as_json: bool, sweep: dict | None):
    try:
        # Fault katas stop nodes on purpose: no watchdog; the end-of-run check still catches a dead cluster.
        alive = None if kata.faults else broker.process_alive
        v = validate_kata(kata, course, broker.bootstrap_servers, broker_alive=alive,
                          cluster_file=cluster_file_of(broker), solution_only=bool(sweep and sweep["only"]))
        if sweep is not None:
            console.progress(f"Running the generated mutants of {kata.id}…")
            validate_mutants(v, broker.bootstrap_servers, broker_alive=alive, cluster_file=cluster_file_of(broker),
                             **sweep)
    except BrokerDied:
        v = None
    if v is None or (not v.ok and not broker.alive()):
        raise InfraError("The Kafka broker died during validation; the verdicts are void.",
                         detail=broker.death_report(), next_step="run `grade validate` again.")
    if not as_json:
        _print_one(v)
    return v


def _coverage_warnings(course) -> None:
    # A warning, not an error: a course is built up one kata at a time (docs/authoring.md).
    covered = {k.checklist for k in course.katas}
    missing = [i.id for i in course.checklist if i.id not in covered]
    if missing:
        console.progress(f"warning: no kata covers these checklist items yet: {', '.join(missing)}")


def _print_one(v) -> None:
    from rich.markup import escape

    runs = ", ".join(f"{r.target} {r.status} ({r.duration:.1f}s)" for r in v.runs)
    mark = "[green]✓[/green]" if v.ok else "[red]✗[/red]"
    console.out.print(f"{mark} {v.kata.id} {escape(v.kata.slug)}  [dim]{escape(runs)}[/dim]")
    for note in v.notes:
        console.out.print(f"    [dim]{escape(note)}[/dim]")
    if v.mutation is not None:
        from grader.mutation.report import print_survivors

        print_survivors(v.mutation)
    for problem in v.problems:
        console.out.print(f"    [red]{escape(problem)}[/red]")


def _print_lint(problems: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"status": "fail" if any(problems.values()) else "pass", "problems": problems},
                              indent=2))
        return
    for kata_id, items in problems.items():
        console.out.print(f"{'✓' if not items else '✗'} {kata_id}")
        for item in items:
            console.out.print(f"    {item}")
