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
@click.option("--sasl", is_flag=True, help="Secure it like a shared cluster: SASL/SCRAM, ACLs that allow the grading "
              "principal only --prefix, and its client config file (for trying `--client-config`).")
@click.option("--prefix", default="grading.", show_default=True, help="With --sasl: the prefix the ACLs grant.")
def up_command(bootstrap_servers, sasl, prefix):
    """Start the reusable local broker (or report the one already running)."""
    reusable.require_not_external(bootstrap_servers)
    secure = None
    if sasl:
        from grader import clientconfig
        from grader.broker.secure import SaslSetup

        clientconfig.load(None, prefix)  # the same rules as every run's prefix
        secure = SaslSetup(prefix=prefix)
    broker, started = reusable.up(console.progress, secure=secure)
    verb = "Started" if started else "Already running:"
    console.out.print(f"{verb} reusable Kafka broker at {broker.bootstrap_servers} (pid {broker.pids[0]}).")
    if broker.client_config:
        console.out.print(f"Secured: SASL/SCRAM-SHA-512 and ACLs; the grading principal's client config is "
                          f"{broker.client_config}.\nNext: `grade KATA --client-config {broker.client_config}`; "
                          "`grade broker down` stops it.")
    else:
        console.out.print("Next: `grade KATA` now uses it; `grade broker down` stops it.")


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
        console.out.print(f"Running at {broker.bootstrap_servers} (pid {broker.pids[0]}), answering metadata requests."
                          + (f" Secured: client config {broker.client_config}." if broker.client_config else ""))
    else:
        console.out.print("Not running. Next: `grade broker up` starts one; without it each `grade` starts its own.")
        raise SystemExit(1)
