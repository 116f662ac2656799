"""Helpers every benchmark script shares: time a command, extract a git ref's tree, a private cache.

Benchmarks compare inside one run (alternating, medians, ratios), so the helpers stay small.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INFRA_EXIT = 3


class InfraExit(RuntimeError):
    """The command ended with exit 3 (an infrastructure error, not a verdict)."""


def timed(cmd: list[str], cwd: Path = ROOT, env: dict | None = None, ok: tuple[int, ...] = (0,)) -> float:
    """Wall time of cmd; an exit code outside ok raises with the output's tail (a benchmark must not
    time a broken run as if it were a verdict)."""
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)
    elapsed = time.monotonic() - started
    if result.returncode not in ok:
        error = InfraExit if result.returncode == INFRA_EXIT else RuntimeError
        raise error(f"{' '.join(cmd)} exited {result.returncode}:\n"
                    + result.stdout.decode(errors="replace")[-1500:] + result.stderr.decode(errors="replace")[-1500:])
    return elapsed


@contextlib.contextmanager
def tree_at(ref: str, parts: tuple[str, ...] = ("grader", "katas", "checks", "solutions")) -> Iterator[Path]:
    """The given folders of a git ref, extracted to a temporary folder (run with PYTHONPATH=that folder)."""
    with tempfile.TemporaryDirectory(prefix="kk-before-") as before:
        archive = subprocess.run(["git", "archive", ref, *parts], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", before], input=archive, check=True)
        yield Path(before)


@contextlib.contextmanager
def private_cache() -> Iterator[Path]:
    """A KAFKA_KATAS_CACHE of this benchmark's own, sharing the fetched jars.

    The default cache holds `grade broker up`'s state file: on a shared machine another user's warm
    broker would otherwise be picked by `--broker auto` and spoil a cold or warm figure.
    """
    shared = Path(os.environ.get("KAFKA_KATAS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME")
                                                              or Path.home() / ".cache") / "kafka-katas")
    with tempfile.TemporaryDirectory(prefix="kk-bench-cache-") as tmp:
        for version_dir in shared.glob("kafka-*"):
            own = Path(tmp) / version_dir.name
            own.mkdir()
            for part in version_dir.iterdir():  # the jars are read only; templates and archives are rebuilt
                if part.name == "lib":
                    os.symlink(part, own / part.name)
                else:
                    shutil.copytree(part, own / part.name, symlinks=True)
        yield Path(tmp)
