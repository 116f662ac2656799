"""`grade broker up|down|status`: keep one local broker warm between runs."""

from __future__ import annotations

import click

from grader import console
from grader.broker import reusable


@click.group("broker")
def broker_group():
    """Keep a local broker running between `grade` runs (faster feedback)."""


@broker_group.command("up")
@click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", hidden=True)
def up_command(bootstrap_servers):
    """Start the reusable local broker (or report the one already running)."""
    reusable.require_not_external(bootstrap_servers)
    broker, started = reusable.up(console.progress)
    verb = "Started" if started else "Already running:"
    console.out.print(f"{verb} reusable Kafka broker at {broker.bootstrap_servers} (pid {broker.pids[0]}).\n"
                      "Next: `grade KATA` now uses it; `grade broker down` stops it.")


@broker_group.command("down")
def down_command():
    """Stop the reusable local broker and delete its data."""
    if reusable.down():
        console.out.print("Stopped the reusable broker.")
    else:
        console.out.print("No reusable broker was running. Next: `grade broker up` starts one.")


@broker_group.command("status")
def status_command():
    """Say whether the reusable broker runs, where, and whether it answers."""
    broker = reusable.running()
    if broker:
        console.out.print(f"Running at {broker.bootstrap_servers} (pid {broker.pids[0]}), answering metadata requests.")
    else:
        console.out.print("Not running. Next: `grade broker up` starts one; without it each `grade` starts its own.")
        raise SystemExit(1)
