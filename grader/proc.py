"""Child processes that never outlive the grader.

A grader killed by SIGKILL (an OOM kill, a closed terminal, a CI timeout) runs no
cleanup code. On Linux, `setpriv --pdeathsig KILL` (util-linux, on every Debian-like
system) makes the kernel kill a child the moment its parent dies; elsewhere the normal
teardown is all there is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading

_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
_ACTIVE: set[subprocess.Popen] = set()
_LOCK = threading.Lock()


def guarded(cmd: list[str]) -> list[str]:
    """cmd, prefixed so the process dies with its parent (when the platform allows)."""
    return [_SETPRIV, "--pdeathsig", "KILL", *cmd] if _SETPRIV else list(cmd)


def kept(cmd: list[str]) -> list[str]:
    """cmd under grader/keeper.py: it ends cmd once this grader is gone. pdeathsig alone misses a grader
    killed between fork and the child's prctl (the child is then init's); the keeper polls the owner's pid."""
    return [sys.executable, "-m", "grader.keeper", str(os.getpid()), "--", *cmd]


def track(proc: subprocess.Popen) -> subprocess.Popen:
    with _LOCK:
        _ACTIVE.add(proc)
    return proc


def untrack(proc: subprocess.Popen) -> None:
    with _LOCK:
        _ACTIVE.discard(proc)


def kill_all() -> None:
    """Ctrl-C with validations running in worker threads: stop every check run still going."""
    with _LOCK:
        procs = list(_ACTIVE)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def pid_running(pid: int) -> bool:
    """Is this process alive? A zombie (exited, not yet reaped) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (not Linux): the signal test above is all there is
