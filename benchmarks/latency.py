"""Benchmark P5 (issue 15): how long a learner waits for a verdict, per kata.

For every kata (or --katas): `grade KATA --solution` and `grade KATA` on the stub, cold (the run starts
a broker of its own, the default path) and warm (`grade broker up` left one running); median of --runs.
With --before-ref, the tree of that git ref is measured in the same run, alternating with this tree,
so a before/after ratio does not depend on the machine's load at two different times.

Each tree gets a cache folder of its own (sharing the fetched jars): another user's `grade broker up`
on the same machine is never picked up, and each tree's warm broker runs with that tree's settings.

Run from the repository root:
  python benchmarks/latency.py [--katas kata-01,kata-08] [--runs 3] [--modes cold,warm]
                               [--targets solution,stub] [--before-ref REF] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._timing import InfraExit, private_cache, timed, tree_at  # noqa: E402
from grader.catalog import load_course  # noqa: E402

TARGETS = {"solution": (["--solution"], (0,)), "stub": ([], (1,))}


def grade_cmd(kata_id: str, mode: str, target: str) -> list[str]:
    # cold: --broker local, a fresh broker of this run's own; warm: auto finds the tree's reusable one
    return [sys.executable, "-m", "grader", "run", kata_id, *TARGETS[target][0], "-q",
            *(["--broker", "local"] if mode == "cold" else [])]


def tree_env(tree: Path, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "PYTHONPATH")}
    return {**env, "PYTHONPATH": str(tree), "KAFKA_KATAS_CACHE": str(cache), "KAFKA_KATAS_DOCKER": "0"}


def broker(tree: Path, env: dict, action: str) -> None:
    subprocess.run([sys.executable, "-m", "grader", "broker", action], cwd=tree, env=env, check=True,
                   capture_output=True)


def measure(trees: dict[str, Path], envs: dict[str, dict], katas: list[str], modes: list[str],
            targets: list[str], runs: int) -> tuple[dict, list[str]]:
    times: dict = {name: {k: {} for k in katas} for name in trees}
    errors: list[str] = []
    for name, tree in trees.items():  # untimed: builds each cache's class-data archive, warms the OS caches
        timed(grade_cmd(katas[0], "cold", "solution"), tree, envs[name])
    for mode in modes:
        with contextlib.ExitStack() as stack:
            if mode == "warm":
                for name, tree in trees.items():
                    broker(tree, envs[name], "up")
                    stack.callback(broker, tree, envs[name], "down")
            for run in range(runs):
                for kata in katas:
                    for target in targets:
                        for name, tree in trees.items():  # alternate: the same load for both trees
                            cell = times[name][kata].setdefault(f"{mode} {target}", [])
                            try:
                                cell.append(timed(grade_cmd(kata, mode, target), tree, envs[name],
                                                  ok=TARGETS[target][1]))
                            except InfraExit as exc:  # counted, never timed as a verdict
                                errors.append(f"{name} {kata} {mode} {target} run {run + 1}: {exc}")
                            print(f"  {name:6} {kata} {mode:4} {target:8} run {run + 1}: "
                                  f"{cell[-1] if cell else float('nan'):.2f}s", file=sys.stderr, flush=True)
    return times, errors


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def table(times: dict, katas: list[str], columns: list[str]) -> str:
    names = list(times)
    fmt = lambda x: "–" if x is None else f"{x:.1f}"  # noqa: E731

    def cell(kata_or_values, col: str) -> str:
        values = [med(times[n][kata_or_values].get(col, [])) for n in names]
        return " → ".join(fmt(v) for v in values)

    lines = ["| kata | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(cell(k, c) for c in columns) + " |" for k in katas]
    for label, agg in (("median", statistics.median), ("max", max)):
        row = []
        for col in columns:
            per_tree = []
            for n in names:
                meds = [m for k in katas if (m := med(times[n][k].get(col, []))) is not None]
                per_tree.append(agg(meds) if meds else None)
            row.append(" → ".join(fmt(v) for v in per_tree))
        lines.append(f"| **{label}** | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--katas", default="", help="comma-separated ids (default: every kata)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="cold,warm")
    parser.add_argument("--targets", default="solution,stub")
    parser.add_argument("--before-ref", default="")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    course = load_course(ROOT)
    katas = [course.find(k).id for k in args.katas.split(",") if k] or [k.id for k in course.katas]
    modes, targets = args.modes.split(","), args.targets.split(",")
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        trees = {"before": stack.enter_context(tree_at(args.before_ref))} if args.before_ref else {}
        trees["after"] = ROOT
        envs = {name: tree_env(tree, stack.enter_context(private_cache())) for name, tree in trees.items()}
        times, errors = measure(trees, envs, katas, modes, targets, args.runs)
    load_after = os.getloadavg()
    columns = [f"{m} {t}" for m in modes for t in targets]
    print(f"grade wall time in seconds, median of {args.runs}"
          + (f", before ({args.before_ref}) → after (this tree), alternating runs" if args.before_ref else ""))
    print(f"load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at end, {os.cpu_count()} cores")
    print(table(times, katas, columns))
    print(f"infrastructure errors (exit 3): {len(errors)}")
    for error in errors:
        print("  " + error.splitlines()[0])
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "before_ref": args.before_ref or None,
                                         "load": [load_before[0], load_after[0]], "cores": os.cpu_count(),
                                         "times": times, "infra_errors": errors}, indent=2))


if __name__ == "__main__":
    main()
