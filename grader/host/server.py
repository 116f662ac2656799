"""The learner host: the only process that loads and runs the learner's code.

    python -m grader.host.server FD LIMITS_JSON          serve the judge's calls on socket FD
    python -m grader.host.server --child SPEC LIMITS_JSON  run one function for a ChildRun

It applies its limits before any learner code runs, answers the judge's probe (which
isolation is in force, measured from inside), then loads learner files on request and runs
the calls the judge sends. Learner output is forwarded to the judge (up to a cap).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import resource
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path

from grader import clientroute as clients
from grader.host.proxies import RemoteFunction
from grader.host.rpc import Connection, learner_frames

OUTPUT_CAP = 256 * 1024  # bytes of learner output forwarded to the judge; the rest is dropped
LOADED: set[str] = set()


def apply_limits(limits: dict) -> None:
    """Lower this process's limits (soft = hard, so learner code cannot raise them again)."""
    names = {"cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC,
             "fsize": resource.RLIMIT_FSIZE, "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}
    for name, value in limits.items():
        if name in names and value is not None:
            soft, hard = resource.getrlimit(names[name])
            value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
            resource.setrlimit(names[name], (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full file fails the write instead of killing the host


def load(path: str):
    """A fresh module from the learner's file, under a unique name (never shadows a library)."""
    resolved = str(Path(path))
    spec = importlib.util.spec_from_file_location(f"kata_impl_{uuid.uuid4().hex[:8]}", resolved)
    module = importlib.util.module_from_spec(spec)
    LOADED.add(resolved)
    parent = str(Path(resolved).parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


CONSTRUCTIBLE = {"confluent_kafka.Producer", "confluent_kafka.Consumer", "confluent_kafka.admin.AdminClient",
                 "builtins.list", "builtins.dict"}


def construct(what: str, args: list | None = None, kwargs: dict | None = None):
    """An object the judge asks to live here, next to the learner's code (kata-17: the producer the
    learner's publish() drives is built in this process, so its produce() calls stay local)."""
    if what not in CONSTRUCTIBLE:
        raise ValueError(f"{what} cannot be constructed in the learner host")
    module, _, name = what.rpartition(".")
    args = [_unblocking(a) for a in args or []]
    return getattr(importlib.import_module(module), name)(*args, **(kwargs or {}))


def _unblocking(config):
    """A client config's stats_cb from the judge is sent without waiting: librdkafka calls it from poll() in
    the learner's own loop, which must not wait for the judge's process to be scheduled."""
    if isinstance(config, dict) and isinstance(config.get("stats_cb"), RemoteFunction):
        judge_fn = config["stats_cb"]
        conn = object.__getattribute__(judge_fn, "_conn")
        return {**config, "stats_cb": lambda raw: conn.notify_call(judge_fn, raw)}
    return config


def probe(paths: list[str] | None = None, judge_pid: int | None = None) -> dict:
    """What this process can see and do, measured before any learner code ran."""
    readable = {}
    for p in paths or []:
        try:
            with open(p, "rb") as fh:
                fh.read(1)
            readable[p] = True
        except OSError:
            readable[p] = False
    limits = {name: resource.getrlimit(getattr(resource, f"RLIMIT_{name.upper()}"))[1]
              for name in ("cpu", "as", "nproc", "fsize", "nofile")}
    return {"uid": os.getuid(), "pid": os.getpid(), "pgid": os.getpgid(0), "cwd": os.getcwd(),
            "home": os.environ.get("HOME"), "readable": readable, "limits": limits,
            "judge_visible": bool(judge_pid) and os.path.exists(f"/proc/{judge_pid}"),
            "stdin_closed": _stdin_closed()}


def _stdin_closed() -> bool:
    try:
        return os.read(0, 1) == b""
    except OSError:
        return True


class _Forward(io.TextIOBase):
    """sys.stdout/sys.stderr of the learner's code: text goes to the judge's report, up to OUTPUT_CAP."""

    def __init__(self, conn: Connection, budget: list):
        self.conn, self.budget = conn, budget

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        if self.budget[0] > 0 and text:
            chunk = text[: self.budget[0]]
            self.budget[0] -= len(chunk)
            with contextlib.suppress(Exception):
                self.conn.notify_output(chunk)
        return len(text)


def serve(fd: int) -> int:
    with contextlib.suppress(ImportError):  # what every learner file imports: load it while the judge collects
        import confluent_kafka  # noqa: F401
    sock = socket.socket(fileno=fd)
    conn = Connection(sock, "H", ops={"load": load, "probe": probe, "construct": construct},
                      frames=lambda exc: learner_frames(exc, LOADED), allow_base_exceptions=True)
    budget = [OUTPUT_CAP]
    sys.stdout = _Forward(conn, budget)
    sys.stderr = _Forward(conn, budget)
    conn.closed.wait()
    os._exit(0)  # the judge is done with us: learner threads never keep the host alive


def child(spec_path: str) -> int:
    from grader.child import run_child
    return run_child(json.loads(Path(spec_path).read_text()), load, LOADED)


def main(argv: list[str]) -> int:
    limits = json.loads(argv[-1]) if argv and argv[-1].startswith("{") else {}
    apply_limits(limits)
    if clients.from_env():  # a shared, secured cluster: the learner's clients get its settings too
        clients.install()
    if argv[0] == "--child":
        return child(argv[1])
    return serve(int(argv[0]))


if __name__ == "__main__":
    threading.current_thread().name = "learner-host"
    sys.exit(main(sys.argv[1:]))
