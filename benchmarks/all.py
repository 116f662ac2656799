"""All four performance targets (issue: Performance) in one run, each against its target.

Runs the three benchmark scripts one after another (never at once: they would share the
cores and skew each other), shows their full output, then a summary:

  P1 broker cold start        Kafka default launch / grader launch        >= 2x
  P2 warm grade overhead      grade kata-01 / bare pytest, same broker    <= 1.2x
  P3 full validation          one broker per kata / shared (--jobs N)     >= 3x
  P4 memory                   one broker RSS <= 512 MiB; 3 brokers <= 1.5 GiB

Run from the repository root:  python benchmarks/all.py [--runs 5] [--jobs 3]   (about 20 minutes)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> str:
    print(f"\n$ python benchmarks/{script} {' '.join(args)}", flush=True)
    proc = subprocess.Popen([sys.executable, str(HERE / script), *args], cwd=HERE.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if proc.wait() != 0:
        sys.exit(f"benchmarks/{script} failed (exit {proc.returncode}); see its output above.")
    return "".join(lines)


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if not found:
        sys.exit(f"could not find /{pattern}/ in the output above: did a benchmark script change its wording?")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    start = run("broker_start.py", "--runs", str(args.runs))
    feedback = run("feedback.py", "--runs", str(max(args.runs, 8)))
    validation = run("validation.py", "--jobs", str(args.jobs), "--skip-serial")
    rows = [
        ("P1 broker cold start, default / grader", number(r"template \+ AppCDS .*?([\d.]+)x faster", start), ">=", 2.0,
         "x"),
        ("P2 warm grade / bare pytest", number(r"= ([\d.]+)x", feedback), "<=", 1.2, "x"),
        ("P3 full validation, broker per kata / shared", number(rf"--jobs {args.jobs} [\d.]+s \(exit \d\) = ([\d.]+)x",
                                                                validation), ">=", 3.0, "x"),
        ("P4 one broker RSS at ready", number(r"RSS at ready, median: grader ([\d.]+) MiB", start), "<=", 512, " MiB"),
        ("P4 3-broker cluster RSS at ready", number(r"three JVMs at ready: median ([\d.]+) MiB", start), "<=", 1536,
         " MiB"),
    ]
    print("\nSummary")
    met = True
    for label, value, op, target, unit in rows:
        ok = value >= target if op == ">=" else value <= target
        met &= ok
        print(f"  {'met ' if ok else 'MISS'}  {label}: {value:g}{unit} (target {op} {target:g}{unit})")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
