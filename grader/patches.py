"""Known-bad mistakes as patches: a unified diff against the kata's reference solution,
applied to a temporary copy when the mistake is graded.

A reviewer reads the mistake in its few changed lines instead of a whole copied file,
and a patch that no longer applies after the solution changed is a clear validation
problem naming the file, never a silent pass. A known-bad entry that names a `.py`
file is still graded as that file (a mistake no patch can express; say why in it).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from grader.errors import CourseError


class PatchDoesNotApply(CourseError):
    """The solution changed under a known-bad patch."""


def patch_tool() -> str:
    tool = shutil.which("patch")
    if not tool:
        raise CourseError("Known-bad mistakes are patches, and the `patch` program was not found.",
                          next_step="install it (`sudo apt-get install patch`, or `brew install gpatch`), "
                          "then run `grade validate` again.")
    return tool


def apply_patch(solution: Path, patch_file: Path, out_dir: Path) -> Path:
    """Write solution + patch into out_dir under the solution's own file name; return that path."""
    target = out_dir / solution.name
    shutil.copyfile(solution, target)
    run = subprocess.run([patch_tool(), "--batch", "--forward", "--silent", "--no-backup-if-mismatch",
                          "-p1", "-r", "-", "-d", str(out_dir), "-i", str(patch_file.resolve())],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise PatchDoesNotApply(
            f"{patch_file}: the known-bad patch no longer applies to {solution}.",
            detail=(run.stdout + run.stderr).strip()[-1500:],
            next_step=f"re-create it: edit a copy of the solution to hold the mistake, then "
            f"`diff -u --label a/{solution.name} --label b/{solution.name} {solution} COPY > {patch_file}`.")
    return target


@contextlib.contextmanager
def materialized(solution: Path, bad_file: Path) -> Iterator[Path]:
    """The known-bad mistake as a file to grade: the patched solution, or the file itself."""
    if bad_file.suffix != ".patch" or not bad_file.is_file():  # a missing file is reported by whoever grades it
        yield bad_file
        return
    with tempfile.TemporaryDirectory(prefix="kata-known-bad-") as tmp:
        yield apply_patch(solution, bad_file, Path(tmp))
