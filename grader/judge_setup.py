"""The judge process's own setup (pytest plugin side, never importable by checks).

- the judge makes itself non-dumpable: a process of the same uid can then neither ptrace it
  nor open /proc/<judge>/fd/* (where its verdict pipe is);
- files the checks create under tmp_path must be writable by the learner host, which may run
  as another user: the judge's umask is 0 and pytest's temporary directories are opened up;
- one learner host is started as the session begins; its probe says which isolation layers
  really hold, and that goes to the runner as the first event of the verdict channel.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import tempfile
import threading
from pathlib import Path

import pytest

from grader import clientroute as clients
from grader.host import sandbox
from grader.kit.learner import HostPool, set_pool

PR_SET_DUMPABLE = 4
_STATE: dict = {"pool": None, "write": None, "cfg": None}


def configure(config: pytest.Config, write_event) -> None:
    path = config.getoption("--kata-host", None)
    if path:
        cfg = json.loads(Path(path).read_text())
    else:  # pytest run by hand on a checks folder: a plain separate process
        scratch = Path(tempfile.mkdtemp(prefix="kata-scratch-"))
        cfg = {**sandbox.settings(scratch, 600, mode="process"), "private": str(scratch), "hidden": []}
    sandbox.prepare_scratch(Path(cfg["scratch"]))
    client = config.getoption("--kata-client", None)
    if client:  # a shared, secured cluster: every client of the checks and of the learner's code
        data = json.loads(Path(client).read_text())
        clients.configure(data["properties"], data["run_prefix"], data["name_prefix"])
        clients.install()
        cfg["env"] = clients.to_env()
    _non_dumpable()
    os.umask(0)
    _open_up_tmp_path()
    pool = HostPool(cfg, Path(cfg["private"]))
    _STATE.update(pool=pool, write=write_event, cfg=cfg)
    pool.on_start = _probe_first
    pool.on_death = lambda code: write_event({"event": "learner-exit", "code": code})
    set_pool(pool)


def start_host(config: pytest.Config) -> None:
    pool = _STATE["pool"]
    if pool is not None:  # start it while pytest collects the checks
        def warm() -> None:
            with contextlib.suppress(Exception):
                pool.get()
        threading.Thread(target=warm, daemon=True).start()


def close() -> None:
    pool = _STATE["pool"]
    if pool is not None:
        pool.close()


def _probe_first(host) -> None:
    pool = _STATE["pool"]
    pool.on_start = None
    cfg = _STATE["cfg"]
    try:
        seen = host.probe(cfg.get("hidden", []), os.getpid())
    except Exception as exc:  # the host did not start: every call will say so
        _STATE["write"]({"event": "isolation", "isolation": "none", "layers": [], "error": str(exc)[:500]})
        return
    _STATE["write"](isolation_event(cfg, seen))


def isolation_event(cfg: dict, seen: dict) -> dict:
    """Which layers held, from what the host itself could see and do."""
    held = []
    if seen.get("pgid") != os.getpgid(0):
        held.append("process group")
    wanted = cfg["limits"]
    if all(seen["limits"].get(k) == wanted.get(k) for k in ("cpu", "as", "fsize", "nofile")):
        held.append("rlimits")
    if seen.get("stdin_closed"):
        held.append("stdin closed")
    if seen.get("cwd") == seen.get("home") == str(Path(cfg["scratch"]) / "home"):
        held.append("scratch home")
    hidden_ok = not any(seen.get("readable", {}).values())
    if "user" in cfg["layers"] and seen.get("uid") != os.getuid() and hidden_ok:
        held.append("unprivileged user")
    if "bwrap" in cfg["layers"] and not seen.get("judge_visible") and hidden_ok:
        held.append("private mounts and pids")
    label = "+".join(name for name, layer in (("user", "unprivileged user"), ("bwrap", "private mounts and pids"))
                     if layer in held) or "process"
    return {"event": "isolation", "isolation": label, "layers": held, "wanted": cfg["layers"],
            "uid": seen.get("uid"), "readable": [p for p, ok in seen.get("readable", {}).items() if ok]}


def _non_dumpable() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _open_up_tmp_path() -> None:
    """tmp_path / tmp_path_factory directories: 0o777, so a learner host of another uid can write there."""
    from _pytest.tmpdir import TempPathFactory

    if getattr(TempPathFactory, "_kk_open", False):
        return
    original = TempPathFactory.mktemp

    def mktemp(self, basename: str, numbered: bool = True) -> Path:
        path = original(self, basename, numbered)
        base = self.getbasetemp()
        for d in {base, *[p for p in path.parents if base in p.parents or p == base], path}:
            with contextlib.suppress(OSError):
                d.chmod(0o777)
        return path

    TempPathFactory.mktemp = mktemp
    TempPathFactory._kk_open = True
