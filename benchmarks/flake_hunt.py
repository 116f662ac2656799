"""Flake hunt: N consecutive full validations; every verdict must be the same every time.

A flaky verdict = a run in which a kata's solution did not pass, its stub passed, or a
known-bad fixture was not caught by its named check. Prints per-kata counts and timings.

Run from the repository root:  python benchmarks/flake_hunt.py [--runs 20] [--jobs 1] [--out docs/flake-hunt.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--course", type=Path, default=ROOT, help="course folder (default: this repository)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    subprocess.run([sys.executable, "-m", "grader", "broker", "up"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    failures: dict[str, list[str]] = defaultdict(list)
    walls, per_kata = [], defaultdict(list)
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            result = subprocess.run([sys.executable, "-m", "grader", "validate", "--all", "--json", "--jobs",
                                     str(args.jobs), "--course", str(args.course)], cwd=ROOT, env=env,
                                    capture_output=True, text=True)
            walls.append(time.monotonic() - started)
            if result.returncode not in (0, 1):
                failures["<infrastructure>"].append(f"run {run}: exit {result.returncode}: {result.stderr[-500:]}")
                continue
            for kata in json.loads(result.stdout)["katas"]:
                per_kata[kata["kata"]].append(sum(r["duration_s"] for r in kata["runs"]))
                for problem in kata["problems"]:
                    failures[kata["kata"]].append(f"run {run}: {problem}")
            print(f"run {run}/{args.runs}: {walls[-1]:.1f}s, "
                  f"{sum(len(v) for v in failures.values())} flaky verdicts so far", flush=True)
    finally:
        subprocess.run([sys.executable, "-m", "grader", "broker", "down"], cwd=ROOT, env=env, capture_output=True)
    total = sum(len(v) for v in failures.values())
    print(f"\n{args.runs} full validations of {len(per_kata)} katas: {total} flaky verdicts; "
          f"wall time median {statistics.median(walls):.1f}s (min {min(walls):.1f}, max {max(walls):.1f})")
    for kata, times in sorted(per_kata.items()):
        print(f"  {kata}: {len(failures.get(kata, []))} flaky, check time median {statistics.median(times):.1f}s")
    for kata, items in failures.items():
        for item in items[:5]:
            print(f"  FLAKY {kata}: {item}")
    if args.out:
        args.out.write_text(json.dumps({"runs": args.runs, "jobs": args.jobs, "flaky": total,
                                        "wall_s": walls, "failures": failures,
                                        "per_kata_check_s": per_kata}, indent=1))
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
