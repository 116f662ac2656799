"""Soak R3 (issue 15): the 3-broker cluster katas under load, counting infrastructure errors.

Runs `grade KATA --solution` for the cluster katas (default kata-19 and kata-20) with --parallel graders
at once, --runs times in all, and counts the verdicts: exit 0 (passed), 1 (a check failed: a flaky
check), 3 (infrastructure error: what the learner would read as "grading is broken"), and how many runs
needed the automatic start retry. Each grader starts its own cluster (the default path).

Run from the repository root:  python benchmarks/soak.py [--runs 100] [--parallel 2] [--katas kata-19,kata-20]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._timing import private_cache  # noqa: E402

RETRY_LINE = "Starting it once more…"


def one_run(kata: str, env: dict) -> tuple[str, int, float, bool, str]:
    started = time.monotonic()
    # Not -q: the progress lines show whether the start had to be retried.
    result = subprocess.run([sys.executable, "-m", "grader", "run", kata, "--solution", "--broker", "local"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    tail = "\n".join(output.strip().splitlines()[-6:])
    return kata, result.returncode, time.monotonic() - started, RETRY_LINE in output, tail


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--katas", default="kata-19,kata-20")
    args = parser.parse_args()
    katas = args.katas.split(",")
    codes: collections.Counter = collections.Counter()
    retried, durations, failures = 0, [], []
    load = []
    with contextlib.ExitStack() as stack:
        cache = stack.enter_context(private_cache())  # never another user's `grade broker up`
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        env.update(KAFKA_KATAS_CACHE=str(cache), KAFKA_KATAS_DOCKER="0")
        with ThreadPoolExecutor(args.parallel) as pool:
            futures = [pool.submit(one_run, katas[i % len(katas)], env) for i in range(args.runs)]
            for i, future in enumerate(futures, 1):
                kata, code, seconds, was_retried, tail = future.result()
                codes[code] += 1
                retried += was_retried
                durations.append(seconds)
                load.append(os.getloadavg()[0])
                print(f"  run {i}/{args.runs} {kata}: exit {code} in {seconds:.1f}s"
                      f"{' (start retried)' if was_retried else ''}", file=sys.stderr, flush=True)
                if code != 0:
                    failures.append(f"{kata} exit {code}:\n{tail}")
    print(f"soak: {args.runs} runs of {', '.join(katas)} --solution, {args.parallel} graders at once, "
          f"{os.cpu_count()} cores, load average {min(load):.1f}–{max(load):.1f}")
    print(f"  passed {codes[0]}, check failed {codes[1]}, infrastructure errors (exit 3) {codes[3]}, "
          f"other {sum(v for k, v in codes.items() if k not in (0, 1, 3))}; start retried in {retried} runs")
    print(f"  wall time per run: median {statistics.median(durations):.1f}s, max {max(durations):.1f}s")
    for failure in failures:
        print("  " + failure.replace("\n", "\n    "))
    sys.exit(1 if codes[3] or failures else 0)


if __name__ == "__main__":
    main()
