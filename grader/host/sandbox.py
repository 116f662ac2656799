"""How a learner host process is started: the isolation layers around the learner's code.

always       its own session and process group, rlimits, stdin closed, a private scratch
             directory as cwd and $HOME, a minimal environment (the runner's timeout kills it)
user         (grader run as root) an unprivileged uid/gid, no supplementary groups
bwrap        (bubblewrap works here) a private mount namespace with only the Python
             environment and the grader package read-only, the scratch directory read-write,
             a private /tmp, and a private PID namespace; the network (loopback broker) stays

The runner picks the layers (`settings()`), the judge starts hosts with `command()`, and the
host's own probe (grader/host/server.py) says which layers really held.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

LEARNER_USER = "kata-learner"
# Address space: Python + confluent-kafka + librdkafka threads reserve far more virtual memory
# than they use (thread stacks, malloc arenas); measured peaks stay under 1.5 GB with
# MALLOC_ARENA_MAX=2 (docs/benchmarks.md), so 4 GB stops runaway allocation without false alarms.
LIMITS = {"as": 4 << 30, "nproc": 4096, "fsize": 64 << 20, "nofile": 1024, "core": 0}
# bwrap's private /tmp is a tmpfs, i.e. memory: unsized it could take half the RAM (broker included)
# through 64 MB files; learner code gets $TMPDIR in the scratch dir, so /tmp needs little.
TMP_BYTES = 256 << 20
ETC = ("/etc/hosts", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/localtime", "/etc/ssl",
       "/etc/ld.so.cache", "/etc/host.conf", "/etc/resolv.conf", "/etc/gai.conf")


def settings(scratch: Path, timeout_s: float, mode: str = "auto") -> dict:
    """The isolation for one run. mode: auto | process | user | bwrap | user+bwrap (also $KATA_ISOLATION)."""
    mode = os.environ.get("KATA_ISOLATION") or mode
    root = os.geteuid() == 0
    if mode == "auto":
        layers = (["user"] if root else []) + (["bwrap"] if bwrap_works() else [])
    else:
        layers = [x for x in mode.split("+") if x in ("user", "bwrap")]
    uid = gid = None
    if "user" in layers:
        if not root:
            layers.remove("user")
        else:
            uid, gid = learner_ids()
    if "bwrap" in layers and not bwrap_works():
        layers.remove("bwrap")
    if root and "bwrap" in layers and "user" not in layers:
        layers.insert(0, "user")  # never root inside the sandbox
        uid, gid = learner_ids()
    limits = {**LIMITS, "cpu": int(timeout_s) + 30}
    return {"layers": layers, "uid": uid, "gid": gid, "scratch": str(scratch), "limits": limits,
            "python": sys.executable, "grader_parent": str(Path(__file__).resolve().parents[2])}


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """bwrap is installed and can create the namespaces here (user namespaces may be forbidden)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-pid", "--dev", "/dev", "--proc", "/proc",
                               "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.lru_cache(maxsize=1)
def _tmp_size() -> tuple[str, ...]:
    """`--size N` for the private /tmp, when this bwrap has it (0.5 and newer)."""
    args = ("--size", str(TMP_BYTES))
    try:
        ok = subprocess.run([shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", *args, "--tmpfs", "/tmp", "true"],
                            capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return args if ok else ()


def learner_ids() -> tuple[int, int]:
    """The unprivileged account learner code runs as: kata-learner (created if missing), else nobody."""
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(LEARNER_USER)
        return entry.pw_uid, entry.pw_gid
    useradd = shutil.which("useradd")
    if useradd:
        subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group",
                        LEARNER_USER], capture_output=True, timeout=30)
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(LEARNER_USER)
            return entry.pw_uid, entry.pw_gid
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def hide_from_others(dirs: list[Path]) -> None:
    """Take "other" permissions off these directories (the learner host's uid is an other)."""
    for d in dirs:
        with contextlib.suppress(OSError):
            mode = d.stat().st_mode & 0o7777
            if mode & 0o007:
                d.chmod(mode & ~0o007)


def git_dirs(top: Path) -> list[Path]:
    """The git directories holding a course's objects: .git in the course or above it; for a worktree
    (.git is a file) its own git dir and the repository's common directory."""
    for d in (top, *top.parents):
        dot = d / ".git"
        if dot.is_dir():
            return [dot]
        if dot.is_file():
            text = dot.read_text(errors="replace").strip()
            if not text.startswith("gitdir:"):
                return []
            gitdir = (d / text.removeprefix("gitdir:").strip()).resolve()
            common = gitdir / "commondir"
            return [gitdir, (gitdir / common.read_text().strip()).resolve()] if common.is_file() else [gitdir]
    return []


def prepare_scratch(scratch: Path) -> Path:
    """The host's home and cwd inside the scratch directory; returns it."""
    home = scratch / "home"
    for d in (scratch, home, scratch / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o777)
    return home


def command(cfg: dict, args: list[str], binds: tuple[str, ...] = ()) -> tuple[list[str], dict, str]:
    """(argv, env, cwd) that start `python -m grader.host.server ARGS` inside the layers of cfg.
    binds: directories outside the scratch this host may write too (a ChildRun's record files in memory)."""
    scratch = cfg["scratch"]
    home = str(Path(scratch) / "home")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": str(Path(scratch) / "tmp"),
           "PYTHONPATH": cfg["grader_parent"], "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONNOUSERSITE": "1", "MALLOC_ARENA_MAX": "2", "LANG": "C.UTF-8",
           # A host killed by a fatal signal leaves its Python stacks in its log: the report quotes them.
           "PYTHONFAULTHANDLER": "1", **cfg.get("env", {})}
    argv = [cfg["python"], "-m", "grader.host.server", *args]
    setpriv = shutil.which("setpriv")
    if cfg.get("uid") is not None:
        if not setpriv:
            raise RuntimeError("running learner code as an unprivileged user needs setpriv (util-linux)")
        # Inside bwrap when there is one: bwrap (root) binds paths only root may enter, then the uid drops.
        argv = [setpriv, "--reuid", str(cfg["uid"]), "--regid", str(cfg["gid"]), "--clear-groups", "--", *argv]
    if "bwrap" in cfg["layers"]:
        # In a fresh PID namespace every host would be pid 2: code that makes names unique with its pid
        # (kata-09's unstable transactional.id mistake) must see distinct pids, as outside.
        start_at = secrets.randbelow(4_000_000 - 1000) + 1000
        argv = ["/bin/sh", "-c", f'echo {start_at} > /proc/sys/kernel/ns_last_pid 2>/dev/null; "$@"', "sh", *argv]
        argv = [shutil.which("bwrap") or "bwrap", *_bwrap_args(cfg, home, binds), "--", *argv]
    if setpriv:
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    return argv, env, home


def _bwrap_args(cfg: dict, home: str, writable: tuple[str, ...] = ()) -> list[str]:
    args = ["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", *_tmp_size(), "--tmpfs", "/tmp"]
    binds = []
    for path in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", *ETC):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            binds += ["--ro-bind", path, path]
    python = _python_paths(cfg)
    made = {"/", "/tmp", "/usr", "/etc"}
    for path in [*python, cfg["scratch"], *writable]:  # parents bwrap would otherwise create as 0700
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
    for path in python:
        binds += ["--ro-bind", path, path]
    for path in writable:
        binds += ["--bind", path, path]
    return [*args, *binds, "--bind", cfg["scratch"], cfg["scratch"], "--chdir", home]


def _python_paths(cfg: dict) -> list[str]:
    """The Python environment (interpreter, stdlib, site-packages) and the grader package: read-only."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.realpath(sys.executable),
             os.path.dirname(os.path.realpath(cfg["python"]))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(os.path.realpath(sysconfig.get_paths()[key]))
    paths.add(str(Path(cfg["grader_parent"]) / "grader"))
    system = ("/usr", "/lib", "/lib64", "/bin", "/sbin")
    keep = sorted(p for p in paths if os.path.exists(p) and not any(p == s or p.startswith(s + "/") for s in system))
    # Drop paths inside another kept path (binding both is harmless, but noisy).
    return [p for p in keep if not any(p != q and p.startswith(q + "/") for q in keep)]


def bwrap_exit(returncode: int | None, cfg: dict) -> int | None:
    """bwrap reports a signal-killed host as 128+N; give back Popen's -N."""
    if returncode is not None and "bwrap" in cfg["layers"] and returncode > 128:
        return -(returncode - 128)
    return returncode
