"""`grade watch [KATA]`: re-grade every time you save, on one broker kept for the session."""

from __future__ import annotations

import time
from pathlib import Path

import click

from grader import console, report
from grader.catalog import Kata
from grader.commands.common import broker_options, cluster_file_of, course_option, obtain_broker_for, open_course
from grader.errors import InfraError
from grader.progress import ProgressStore, next_kata
from grader.runner import BrokerDied, run_checks

POLL_S = 0.5  # mtime polling: works on every OS and editor (atomic saves included)


def _snapshot(kata: Kata) -> dict[Path, float]:
    files = [p for p in kata.kata_dir.rglob("*.py")]
    return {p: p.stat().st_mtime_ns for p in files if p.exists()}


@click.command("watch")
@click.argument("kata_name", required=False, metavar="[KATA]")
@click.option("--once", is_flag=True, hidden=True, help="Grade once and stop (used by the tests).")
@course_option
@broker_options
def watch_command(kata_name, once, course_dir, broker_mode, bootstrap_servers):
    """Re-grade KATA (default: your next kata) each time you save a file in its folder. Ctrl-C stops."""
    course = open_course(course_dir)
    store = ProgressStore(course)
    kata = course.find(kata_name) if kata_name else next_kata(course, store.load())
    if kata is None:
        console.out.print("Every kata is passed. Next: `grade watch KATA` to revisit one.")
        return
    with obtain_broker_for(kata, broker_mode, bootstrap_servers) as broker:
        seen = _snapshot(kata)
        while True:
            console.out.rule(f"{kata.id} · {time.strftime('%H:%M:%S')}")
            try:
                result = run_checks(kata, kata.stub_path, broker.bootstrap_servers, "stub",
                                    broker_alive=None if kata.faults else broker.process_alive,
                                    cluster_file=cluster_file_of(broker))
            except BrokerDied:
                raise InfraError("The Kafka broker died while watching.", detail=broker.death_report(),
                                 next_step=f"run `grade watch {kata.id}` again.") from None
            result.broker = broker.provider
            store.record_result(kata, result)
            console.out.print(report.render(result, kata, show_passed=False), end="")
            if once:
                raise SystemExit(result.exit_code)
            console.out.print(f"[dim]Watching katas/{kata.dir_name}/ — save a file to grade again, Ctrl-C to stop."
                              "[/dim]")
            while (current := _snapshot(kata)) == seen:
                time.sleep(POLL_S)
            seen = current
