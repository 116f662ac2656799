"""Benchmark: `grade batch` on a synthetic class, every verdict checked.

Each of N students (default 100) hands in one file per kata (default kata-01, kata-02, kata-03), in a rotating
mix: the reference solution, the untouched stub, a known-bad mistake (each kata's patches in turn, applied with
grader/patches.py), a hostile file from tests/fixtures/cheats/, a syntax error, a file in the wrong place, or
nothing; every fifth student hands in a zip, and one a zip that is not a zip. The expected status of every
student × kata is fixed before the run, and the script fails on the first row that differs.

Run from the repository root:  python benchmarks/batch.py [--students 100] [--jobs 2] [--katas kata-01,kata-02,kata-03]
The broker is a reusable one started before the clock (its cold start is measured in broker_start.py).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.broker import reusable  # noqa: E402
from grader.catalog import load_course  # noqa: E402
from grader.patches import apply_patch  # noqa: E402

CHEATS = ROOT / "tests" / "fixtures" / "cheats"
# Hostile files that do not depend on the kata's API, and the status each one earns. They break or
# forge the run; none may pass. (Cheats that wait out a timeout are left to tests/test_integrity.py.)
HOSTILE = {"forge_channel": "crashed", "sys_exit_import": "fail", "os_exit_import": "crashed",
           "forge_results_file": "fail", "replace_hooks": "fail"}
KINDS = ("solution", "stub", "known-bad", "hostile", "solution", "known-bad", "syntax", "wrong-place", "stub",
         "missing")


def build(subs: Path, katas, students: int, scratch: Path) -> dict[tuple[str, str], str]:
    expected = {}
    hostile = sorted(HOSTILE)
    for i in range(students):
        name = f"student-{i:03d}"
        folder = scratch / name if i % 5 == 4 else subs / name  # every fifth hands in a zip
        folder.mkdir(parents=True)
        for j, kata in enumerate(katas):
            kind = KINDS[(i + 3 * j) % len(KINDS)]
            target = folder / kata.stub
            if kind == "solution":
                shutil.copyfile(kata.solution_path, target)
                status = "pass"
            elif kind == "stub":
                shutil.copyfile(kata.stub_path, target)
                status = "fail"
            elif kind == "known-bad":
                patches = sorted((kata.checks_dir / "known_bad").glob("*.patch"))
                patched = apply_patch(kata.solution_path, patches[i % len(patches)],
                                      Path(tempfile.mkdtemp(dir=scratch.parent)))  # removed with the run's folder
                shutil.copyfile(patched, target)
                status = "fail"
            elif kind == "hostile":
                cheat = hostile[i % len(hostile)]
                shutil.copyfile(CHEATS / f"{cheat}.py", target)
                status = HOSTILE[cheat]
            elif kind == "syntax":
                target.write_text(kata.solution_path.read_text() + "\ndef oops(:\n")
                status = "malformed"
            elif kind == "wrong-place":
                (folder / "src").mkdir(exist_ok=True)
                shutil.copyfile(kata.solution_path, folder / "src" / kata.stub)
                status = "missing"
            else:
                status = "missing"
            expected[(name, kata.id)] = status
        if i % 5 == 4:
            with zipfile.ZipFile(subs / f"{name}.zip", "w") as z:
                for p in folder.rglob("*"):
                    if p.is_file():
                        z.write(p, p.relative_to(folder))
    (subs / "student-not-a-zip.zip").write_text("a Word document, renamed\n")
    expected.update({("student-not-a-zip", k.id): "malformed" for k in katas})
    return expected


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--katas", default="kata-01,kata-02,kata-03")
    args = parser.parse_args()
    course = load_course(ROOT)
    katas = [course.find(k) for k in args.katas.split(",")]
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        subs, out = Path(tmp) / "submissions", Path(tmp) / "out"
        subs.mkdir()
        expected = build(subs, katas, args.students - 1, Path(tmp) / "zipped")  # + the not-a-zip student
        env["KAFKA_KATAS_DATA"] = str(Path(tmp) / "no-progress-store")
        broker, started = reusable.up(lambda m: None)
        try:
            began = time.monotonic()
            run = subprocess.run([sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out),
                                  "--katas", args.katas, "--jobs", str(args.jobs),
                                  "--bootstrap-servers", broker.bootstrap_servers],
                                 cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.monotonic() - began
        finally:
            if started:
                reusable.down()
        if run.returncode != 0:
            raise SystemExit(f"grade batch exited {run.returncode}:\n{run.stderr[-3000:]}")
        with (out / "gradebook.csv").open() as f:
            rows = {(r["student"], r["kata"]): r for r in csv.DictReader(f)}
        wrong = [f"{s} {k}: expected {want}, got {rows.get((s, k), {}).get('status', 'no row')}"
                 for (s, k), want in expected.items() if rows.get((s, k), {}).get("status") != want]
        assert not Path(env["KAFKA_KATAS_DATA"]).exists(), "the batch wrote a progress store"
        if wrong:
            raise SystemExit(f"{len(wrong)} of {len(expected)} verdicts wrong:\n" + "\n".join(wrong))
        counts = {}
        for want in expected.values():
            counts[want] = counts.get(want, 0) + 1
        students = len({s for s, _ in expected})
        print(f"grade batch: {students} submissions × {len(katas)} katas ({args.katas}) = {len(expected)} rows, "
              f"--jobs {args.jobs}: {wall:.0f} s wall, {students / wall * 60:.1f} submissions/minute, "
              f"{len(expected) / wall * 60:.1f} rows/minute; every verdict right "
              f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})")


if __name__ == "__main__":
    main()
