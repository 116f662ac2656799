"""Benchmark P2: `grade KATA` overhead over the bare pytest run of the same checks, on the
same warm broker, measured side by side (alternating runs, medians, one ratio).

Run from the repository root:  python benchmarks/feedback.py [--runs 10] [--kata kata-01]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._timing import timed  # noqa: E402
from grader.broker import reusable  # noqa: E402
from grader.catalog import load_course  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--kata", default="kata-01")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    kata = load_course(ROOT).find(args.kata)
    broker, started = reusable.up(lambda m: None)
    try:
        grade = [sys.executable, "-m", "grader", kata.id, "--solution", "-q"]
        bare = [sys.executable, "-m", "pytest", str(kata.checks_dir), "-c", os.devnull, "-p", "grader.pytest_plugin",
                "-p", "no:cacheprovider", "-q", f"--kata-impl={kata.solution_path}",
                f"--kafka-bootstrap={broker.bootstrap_servers}"]
        timed(grade, ROOT, env)  # warm the OS caches for both
        g, b = [], []
        for _ in range(args.runs):
            g.append(timed(grade, ROOT, env))
            b.append(timed(bare, ROOT, env))
        print(f"P2 warm feedback for {kata.id} --solution, median of {args.runs} alternating runs: "
              f"grade {statistics.median(g):.2f}s vs bare pytest {statistics.median(b):.2f}s "
              f"= {statistics.median(g) / statistics.median(b):.2f}x")
        print(f"   grade runs: {', '.join(f'{x:.2f}' for x in g)}")
        print(f"   bare runs:  {', '.join(f'{x:.2f}' for x in b)}")
    finally:
        if started:
            reusable.down()


if __name__ == "__main__":
    main()
