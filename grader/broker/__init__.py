"""Broker providers. `obtain()` picks one and always releases what it started.

auto = external (flag or KAFKA_BOOTSTRAP_SERVERS), then the reusable local broker
when `grade broker up` left one running, then docker when a daemon answers, then a
fresh local broker (DESIGN.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from grader import clientconfig
from grader.broker.base import Broker, Progress, metadata_answers
from grader.errors import UsageError

MODES = ("auto", "local", "docker", "external")

__all__ = ["Broker", "MODES", "metadata_answers", "obtain", "obtain_for", "start", "start_for"]


def start(mode: str, bootstrap_servers: str | None, progress: Progress) -> Broker:
    bootstrap_servers = bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    shared = clientconfig.active()
    if shared is not None and shared.properties:  # --client-config: a cluster of the instructor's own
        servers = bootstrap_servers or shared.bootstrap_servers
        if not servers or mode in ("local", "docker"):
            raise UsageError(f"--client-config ({shared.source}) describes a cluster you run, and "
                             + ("no address was given." if not servers else f"--broker {mode} starts a new one."),
                             next_step="pass --bootstrap-servers HOST:PORT (or bootstrap.servers= in the file) "
                             "and --broker auto or external.")
        from grader.broker.external import connect_external

        return connect_external(servers, progress, shared.client_properties(), shared.source)
    if mode == "external" or (mode == "auto" and bootstrap_servers):
        if not bootstrap_servers:
            raise UsageError("--broker external needs the cluster's address.",
                             next_step="pass --bootstrap-servers HOST:PORT or set KAFKA_BOOTSTRAP_SERVERS.")
        from grader.broker.external import connect_external

        return connect_external(bootstrap_servers, progress)
    if mode == "auto":  # --broker local always means a fresh broker of this run's own
        from grader.broker.reusable import running

        reused = running()
        if reused and reused.client_config:  # `grade broker up --sasl`: no plain client gets in
            raise UsageError(f"The reusable broker at {reused.bootstrap_servers} is secured (SASL and ACLs, "
                             "`grade broker up --sasl`): it answers clients with credentials only.",
                             next_step=f"add `--client-config {reused.client_config}`, or run `grade broker down` "
                             "and `grade broker up` for a plain one.")
        if reused:
            progress(f"Using the reusable broker at {reused.bootstrap_servers} (`grade broker down` stops it)…")
            return reused
    if mode == "docker" or (mode == "auto" and os.environ.get("KAFKA_KATAS_DOCKER") != "0"
                            and _docker_answers()):
        from grader.broker.docker import start_docker

        return start_docker(progress)
    from grader.broker.local import start_local

    return start_local(progress)


def _docker_answers() -> bool:
    from grader.broker.docker import docker_available

    return docker_available()


def start_for(kata, mode: str, bootstrap_servers: str | None, progress: Progress) -> Broker:
    """A broker fit for this kata: katas with several brokers or faults get a local cluster of their own."""
    if kata.services and clientconfig.needs_local_broker(kata):
        # Its Connect worker speaks Java client settings: it stays off the shared cluster.
        from grader.broker.local import start_local

        progress(f"{kata.id} needs Kafka Connect beside the broker: it runs on a local broker of its own, "
                 "not on the cluster of --client-config.")
        return start_local(progress)
    if not kata.needs_own_cluster:
        return start(mode, bootstrap_servers, progress)
    if mode == "docker":
        raise UsageError(f"{kata.id} needs {kata.brokers} brokers{' and fault control' if kata.faults else ''}, "
                         "which the docker provider does not offer.", next_step=f"run `grade {kata.id}` "
                         "with --broker local (or auto).")
    from grader.broker.local import start_local

    return start_local(progress, node_count=kata.brokers, proxy=kata.faults)


@contextlib.contextmanager
def obtain_for(kata, mode: str, bootstrap_servers: str | None, progress: Progress) -> Iterator[Broker]:
    broker = start_for(kata, mode, bootstrap_servers, progress)
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def obtain(mode: str, bootstrap_servers: str | None, progress: Progress) -> Iterator[Broker]:
    broker = start(mode, bootstrap_servers, progress)
    try:
        yield broker
    finally:
        broker.stop()
