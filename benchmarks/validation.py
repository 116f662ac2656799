"""Benchmark P3: full validation on one shared broker versus one broker per kata (the naive way).

  naive : for each kata, `grade validate KATA --broker local` — a fresh broker per kata, plain
          start (KAFKA_KATAS_FAST_START=0: no storage template, no class-data archive)
  shared: `grade validate --all` — one broker for every kata, one kata at a time
  shared --jobs N: the same, N katas at once (their checks mostly wait on the broker)

Katas with their own cluster (brokers: 3 / faults) start it in both ways alike.
Run from the repository root:  python benchmarks/validation.py [--jobs 3] [--skip-serial]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.catalog import load_course  # noqa: E402


def run(args: list[str], env: dict) -> tuple[float, int]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, env=env, capture_output=True)
    return time.monotonic() - started, result.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--skip-serial", action="store_true", help="skip the shared-broker run with --jobs 1")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    katas = [k.id for k in load_course(ROOT).katas]

    naive_env = {**env, "KAFKA_KATAS_FAST_START": "0"}
    naive = 0.0
    naive_ok = True
    for kata in katas:
        took, code = run(["validate", kata, "--broker", "local"], naive_env)
        naive += took
        naive_ok &= code == 0
        print(f"  naive {kata}: {took:.1f}s (exit {code})", flush=True)
    line = (f"P3 full validation of {len(katas)} katas: one broker per kata (plain start) {naive:.1f}s "
            f"(all ok: {naive_ok})")
    if not args.skip_serial:
        shared, code1 = run(["validate", "--all", "--broker", "local"], env)
        line += f"; shared broker {shared:.1f}s (exit {code1}) = {naive / shared:.2f}x"
    parallel, code2 = run(["validate", "--all", "--broker", "local", "--jobs", str(args.jobs)], env)
    print(line + f"; shared broker with --jobs {args.jobs} {parallel:.1f}s (exit {code2}) = "
          f"{naive / parallel:.2f}x")


if __name__ == "__main__":
    main()
