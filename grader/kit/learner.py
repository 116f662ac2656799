"""The learner's code as the judge sees it: a proxy to a module in the learner host process.

`impl.publish_orders(...)` in a check sends the call to the host (grader/host/server.py) and
returns its result as plain data; callables the check passes become handles the host calls
back; messages cross as records; an exception of the learner's code is raised here as an
exception of the same name (a builtin or a class standing for the learner's class, so
`pytest.raises(impl.TopicConflict)` works) carrying the learner's own frames.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from grader.host import sandbox
from grader.host.rpc import Connection, RemoteError

__all__ = ["LearnerProcessDied", "LearnerHost", "in_host", "load_learner_module", "RemoteError"]


class LearnerProcessDied(Exception):
    """The learner host ended (os._exit, a crash, a limit) while the check needed it."""


class LearnerHost:
    """One learner host process and the connection to it."""

    def __init__(self, cfg: dict, log_path: Path):
        self.cfg = cfg
        parent, child = socket.socketpair()
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        argv, env, cwd = sandbox.command(cfg, [str(child.fileno()), json.dumps(cfg["limits"])])
        self.proc = spawn(argv, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=self._log,
                          stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        child.close()
        self._closing = self._reported = False
        self.on_death = None  # called once with the exit code when the host ends before the judge is done
        self.conn = Connection(parent, "J", on_output=_show_output, died=self._died)
        self.conn.on_closed = self._died  # reports a death that no waiting request saw (e.g. after a reply)
        if cfg.get("uid") is not None:
            self.conn.before_request = functools.partial(hand_over, cfg)

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.conn.closed.is_set()

    def _died(self) -> LearnerProcessDied:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if not self._closing and not self._reported and self.on_death is not None:
            self._reported = True
            self.on_death(self.returncode())
        return LearnerProcessDied(f"The process running your code ended ({describe_exit(self.returncode())}) "
                                  "while the check was waiting for it: look for os._exit(), sys.exit() at import "
                                  "time, a crash of the interpreter, or a resource limit your code ran into.")

    def returncode(self) -> int | None:
        return sandbox.bwrap_exit(self.proc.poll(), self.cfg)

    def probe(self, paths: list[str], judge_pid: int) -> dict:
        return self.conn.request("probe", args={"paths": paths, "judge_pid": judge_pid})

    def load(self, path: Path):
        return self.conn.request("load", args={"path": str(path)})

    def close(self) -> None:
        self._closing = True
        self.conn.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.proc.poll() is None:
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-spawner")


def spawn(argv: list[str], **popen_kwargs) -> subprocess.Popen:
    """Popen from one thread that lives as long as the judge: a host dies with its parent *thread*
    (setpriv --pdeathsig, bwrap --die-with-parent), and check threads come and go."""
    return _SPAWNER.submit(subprocess.Popen, argv, **popen_kwargs).result()


def hand_over(cfg: dict) -> None:
    """Give the files the checks created in the shared scratch to the learner host's uid, so learner
    code can write where it is asked to (a database the check prepared, a snapshot file)."""
    uid, gid = cfg.get("uid"), cfg.get("gid")
    if uid is None:
        return
    for top, dirs, files in os.walk(Path(cfg["scratch"]) / "checks-tmp"):
        for name in (*dirs, *files):
            path = os.path.join(top, name)
            with contextlib.suppress(OSError):
                if os.lstat(path).st_uid != uid:
                    os.lchown(path, uid, gid)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


_OUTPUT_LOCK = threading.Lock()


def _show_output(text: str) -> None:
    with _OUTPUT_LOCK, contextlib.suppress(Exception):  # the learner's prints land in the check's output
        sys.stdout.write(text)


class HostPool:
    """The judge's session host: started early, replaced when learner code ended it."""

    def __init__(self, cfg: dict, private_dir: Path):
        self.cfg = cfg
        self.private_dir = private_dir
        self._host: LearnerHost | None = None
        self._count = 0
        self._lock = threading.Lock()
        self.on_start = None  # called with each new host (the plugin probes the first one)
        self.on_death = None  # called with the exit code of a host that ended while the judge needed it

    def start(self) -> LearnerHost:
        self._count += 1
        host = LearnerHost(self.cfg, self.private_dir / f"host-{self._count}.log")
        host.on_death = self.on_death
        if self.on_start:
            self.on_start(host)
        return host

    def get(self) -> LearnerHost:
        with self._lock:
            if self._host is None or not self._host.alive():
                if self._host is not None:
                    self._host.close()
                self._host = self.start()
            return self._host

    def close(self) -> None:
        with self._lock:
            if self._host is not None:
                self._host.close()
                self._host = None


_POOL: HostPool | None = None


def set_pool(pool: HostPool | None) -> None:
    global _POOL
    _POOL = pool


def pool() -> HostPool:
    if _POOL is None:
        raise RuntimeError("no learner host: checks run under the grader's pytest plugin (`grade KATA`)")
    return _POOL


def in_host(impl, what: str, *args, **kwargs):
    """Build `what` (e.g. "confluent_kafka.Producer") in the learner host that runs `impl`, and return
    a handle to it: learner code given the handle uses the object locally, at full speed, while the
    check still calls its methods. Callables in args (stats_cb…) are called back in the check."""
    conn = object.__getattribute__(impl, "_conn")
    return conn.request("construct", args=conn.codec.encode({"what": what, "args": list(args), "kwargs": kwargs}))


def load_learner_module(path):
    """The learner's file, freshly loaded in the learner host; fails the check when it cannot be imported."""
    import pytest

    path = Path(path)
    try:
        return pool().get().load(path)
    except LearnerProcessDied as exc:
        pytest.fail(f"Your file {path.name} could not be imported, so no check could run: {exc}", pytrace=False)
    except Exception as exc:
        frames = "".join(f'  File "{f[0]}", line {f[1]}, in {f[2]}\n    {f[3]}\n'
                         for f in getattr(exc, "learner_frames", []) or [])
        pytest.fail(f"Your file {path.name} could not be imported, so no check could run.\n"
                    f"Traceback (most recent call last):\n{frames}{type(exc).__name__}: {exc}", pytrace=False)
