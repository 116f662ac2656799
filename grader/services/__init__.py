"""Services beside the broker for katas that name them (`services: [postgres, connect]` in kata.yaml).

They start after the broker (Connect stores its state there) and stop before it, once per
grade or validation: every run of one validation (stub, solution, known-bad patches) shares
them, and isolation comes from names (connectors, slots, publications, topics carry the run id).
KAFKA_KATAS_POSTGRES_URL / KAFKA_KATAS_CONNECT_URL point at servers of your own instead.
The checks read the addresses from a JSON file (`--kata-services`, grader/pytest_plugin.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from grader.broker.base import Progress
from grader.schema import SERVICES

KNOWN = SERVICES  # in start order: postgres first, Connect's connectors reach for it
# kata id -> the addresses file of its running services; the runner looks it up (run_checks has many
# callers, and a validation runs one kata's targets against one set of services).
ENV = {"postgres": "KAFKA_KATAS_POSTGRES_URL", "connect": "KAFKA_KATAS_CONNECT_URL"}
_ACTIVE: dict[str, Path] = {}
_SERVERS: dict[str, dict] = {}  # kata id -> {name: the server this grader started}


def file_for(kata_id: str) -> Path | None:
    return _ACTIVE.get(kata_id)


def dead(kata_id: str) -> list[str]:
    """Names of the services this grader started for the kata whose process has ended."""
    return [name for name, server in _SERVERS.get(kata_id, {}).items() if not server.alive()]


def death_report(kata_id: str) -> str:
    return "\n".join(f"Last lines of the {name} log ({server.log_path}):\n{server.log_tail()}"
                     for name, server in _SERVERS.get(kata_id, {}).items() if not server.alive())


@contextlib.contextmanager
def started(kata, bootstrap_servers: str, progress: Progress) -> Iterator[Path | None]:
    """Start the kata's services; yield the JSON file of their addresses (None when it names none)."""
    names = tuple(getattr(kata, "services", ()) or ())
    if not names:
        yield None
        return
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(_SERVERS.pop, kata.id, None)
        for name in KNOWN:
            if name not in names:
                continue
            own = os.environ.get(ENV[name])
            if own:
                progress(f"Using the {name} service at {own} ({ENV[name]})…")
                urls[name] = own
                continue
            if name == "postgres":
                from grader.services.postgres import start_postgres

                server = start_postgres(progress)
                urls[name] = server.url
            else:
                from grader.services.connect import start_connect

                server = start_connect(bootstrap_servers, progress)
                urls[name] = server.url
            stack.callback(server.stop)
            _SERVERS.setdefault(kata.id, {})[name] = server
        fd, path = tempfile.mkstemp(prefix="kk-services-", suffix=".json")
        stack.callback(os.unlink, path)
        with os.fdopen(fd, "w") as fh:
            json.dump(urls, fh)
        _ACTIVE[kata.id] = Path(path)
        stack.callback(_ACTIVE.pop, kata.id, None)
        yield Path(path)
