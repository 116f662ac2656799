"""`grade watch [KATA]`: re-grade every time you save, on one broker kept for the session."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from grader import console, report
from grader.catalog import Kata
from grader.commands.common import (
    ascii_option,
    broker_options,
    cluster_file_of,
    course_option,
    obtain_broker_for,
    open_course,
)
from grader.errors import InfraError
from grader.progress import ProgressStore, next_kata
from grader.runner import BrokerDied, run_checks

POLL_S = 0.5  # the fallback: mtime polling works on every OS, editor and file system


def _snapshot(kata: Kata) -> dict[Path, float]:
    files = [p for p in kata.kata_dir.rglob("*.py")]
    return {p: p.stat().st_mtime_ns for p in files if p.exists()}


def _wait_for_save(kata: Kata, seen: dict[Path, float]) -> dict[Path, float]:
    """Block until a .py file in the kata folder changes; returns the new snapshot.

    OS file events (watchfiles: inotify, FSEvents, ...) when available, else polling
    (also forced with KAFKA_KATAS_WATCH=poll, e.g. on network file systems).
    """
    if os.environ.get("KAFKA_KATAS_WATCH") != "poll":
        try:
            from watchfiles import watch
        except ImportError:
            watch = None
        if watch is not None:
            # yield_on_timeout: compare snapshots every 0.5 s too, so a save made before the
            # watcher was listening (right after the last report) is never missed.
            for _ in watch(kata.kata_dir, watch_filter=lambda change, path: path.endswith(".py"),
                           debounce=300, rust_timeout=500, yield_on_timeout=True):
                current = _snapshot(kata)
                if current != seen:
                    return current
    while (current := _snapshot(kata)) == seen:
        time.sleep(POLL_S)
    return current


@click.command("watch")
@click.argument("kata_name", required=False, metavar="[KATA]")
@click.option("--once", is_flag=True, hidden=True, help="Grade once and stop (used by the tests).")
@ascii_option
@course_option
@broker_options
def watch_command(kata_name, once, ascii_only, course_dir, broker_mode, bootstrap_servers):
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
            drawn = report.render(result, kata, show_passed=False, ascii_only=console.draws_ascii(ascii_only))
            console.out.print(drawn, end="")
            if once:
                raise SystemExit(result.exit_code)
            console.out.print(f"[dim]Watching katas/{kata.dir_name}/ — save a file to grade again, Ctrl-C to stop."
                              "[/dim]")
            seen = _wait_for_save(kata, seen)
