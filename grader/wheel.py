"""The grader as a wheel, for a student release that installs without a package index holding it.

kafka-katas is not published on PyPI: a release pinned to `kafka-katas==X` would not install. The release
carries the wheel of the very grader that made it (vendor/), built from this source tree with pip, so
students need PyPI only for the grader's dependencies.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grader.broker.jars import cache_root
from grader.errors import UsageError

SOURCE = Path(__file__).resolve().parents[1]  # the folder holding pyproject.toml and grader/


def source_tree() -> Path | None:
    """This grader's source tree, when it runs from one (not from an installed wheel)."""
    pyproject = SOURCE / "pyproject.toml"
    if pyproject.is_file() and 'name = "kafka-katas"' in pyproject.read_text(errors="replace"):
        return SOURCE
    return None


def digest(src: Path) -> str:
    """A fingerprint of the sources a wheel is built from: the same sources, the same wheel."""
    h = hashlib.sha256()
    files = [src / "pyproject.toml", src / "README.md",
             *sorted(p for p in (src / "grader").rglob("*") if p.is_file() and "__pycache__" not in p.parts)]
    for path in files:
        if path.is_file():
            h.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cached() -> Path:
    """This grader's wheel, built once per version of its sources into the user cache."""
    src = source_tree()
    if src is None:
        raise UsageError("This grader is installed from a package, not a source tree, so it cannot bundle itself.",
                         next_step="pass how students install it: `grade release OUT --grader 'kafka-katas @ "
                         "git+https://HOST/REPO@TAG'`.")
    folder = cache_root() / "wheels" / digest(src)
    found = sorted(folder.glob("kafka_katas-*.whl"))
    if found:
        return found[-1]
    with tempfile.TemporaryDirectory(prefix="kk-wheel-", dir=folder.parent if folder.parent.is_dir() else None) as out:
        built = build(src, Path(out))
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / built.name
        os.replace(built, target)  # whole or absent: a second release never sees half a wheel
    return target


def build(src: Path, dest: Path) -> Path:
    """Build the grader's wheel into dest; returns its path. The build runs on a copy of the sources, so the
    instructor's tree gets no build/ or *.egg-info litter."""
    with tempfile.TemporaryDirectory(prefix="kk-wheel-") as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        shutil.copytree(src / "grader", copy / "grader", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            if (src / name).is_file():
                shutil.copy(src / name, copy / name)
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(copy)],
                               capture_output=True, text=True, timeout=600)
    wheels = sorted(dest.glob("kafka_katas-*.whl"))
    if built.returncode != 0 or not wheels:
        raise UsageError(f"Building the grader's wheel failed:\n{(built.stderr or built.stdout)[-1500:]}",
                         next_step="check the network to PyPI (pip fetches setuptools for the build), or pass "
                         "`--grader REQUIREMENT` to pin a grader published elsewhere.")
    return wheels[-1]
