"""The whole mutation sweep: every kata's generated mutants and known-bad patches, one run.

Runs `grade validate --all --mutants --jobs N --json` (or the katas named) and prints, per kata,
the generated, equivalent and surviving mutants, the score and the time, as a Markdown table for
docs/mutation.md. The JSON is kept in reports/mutation.json (survivors with their diffs).

  python benchmarks/mutation.py [--jobs 3] [kata-01 kata-04 ...] [--label "before"]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("katas", nargs="*")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--label", default="", help="a name for this run in the table's heading")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "mutation.json")
    parser.add_argument("--record", action="store_true",
                        help="update docs/mutation-record.json (what CI compares against) with these scores")
    parser.add_argument("--from-record", action="store_true",
                        help="run nothing: print the table of docs/mutation-record.json (each kata's last sweep)")
    args = parser.parse_args()
    if args.from_record:
        return print_record()
    targets = args.katas or ["--all"]
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "grader", "validate", *targets, "--mutants", "--jobs", str(args.jobs),
                          "--json"], cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    if run.returncode not in (0, 1):
        print(run.stderr[-3000:], file=sys.stderr)
        return run.returncode
    data = json.loads(run.stdout)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2))
    if args.record:
        sys.path.insert(0, str(ROOT))
        from grader.catalog import load_course
        from grader.mutation import record

        record.write(ROOT, {k.id: k for k in load_course(ROOT).katas}, data)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    label = args.label or "Mutation sweep"
    print(f"### {label} (commit {commit.strip()}, --jobs {args.jobs}, {wall / 60:.1f} min wall)\n")
    print("| kata | known-bad caught | generated | equivalent | killed | survived | score | time |")
    print("|---|---|---|---|---|---|---|---|")
    totals = [0, 0, 0, 0]
    for k in data["katas"]:
        bad = [r for r in k["runs"] if r["target"].startswith("known-bad:") and "(all checks)" not in r["target"]]
        caught = sum(r["status"] != "pass" for r in bad)
        m = k.get("mutation")
        if not m:
            print(f"| {k['kata']} | {caught}/{len(bad)} | – | – | – | – | not run | – |")
            continue
        survived = m["run"] - m["killed"]
        totals = [totals[0] + m["generated"], totals[1] + m["equivalent"], totals[2] + m["killed"],
                  totals[3] + survived]
        print(f"| {k['kata']} | {caught}/{len(bad)} | {m['generated']} | {m['equivalent']} | {m['killed']} | "
              f"{survived} | {m['score']:.0%} | {m['seconds']:.0f} s |")
    run_total = totals[2] + totals[3]
    score = totals[2] / run_total if run_total else 1.0
    print(f"| **all** | | {totals[0]} | {totals[1]} | {totals[2]} | {totals[3]} | **{score:.0%}** | "
          f"{wall:.0f} s wall |")
    print(f"\nstatus: {data['status']}; survivors with diffs: {args.out}")
    return 0


def print_record() -> int:
    """The current record: per kata, its known-bad patches and the last recorded sweep of generated mutants."""
    sys.path.insert(0, str(ROOT))
    from grader.catalog import load_course
    from grader.mutation import record

    course = load_course(ROOT)
    saved = json.loads((ROOT / "docs" / "mutation-record.json").read_text())
    stale = {k.id for k in record.changed_katas(ROOT, list(course.katas))}
    print("| kata | known-bad patches | generated | equivalent | killed / run | score | record |")
    print("|---|---|---|---|---|---|---|")
    totals = [0, 0, 0, 0, 0]
    for kata in course.katas:
        m = saved.get(kata.id)
        if not m:
            print(f"| {kata.id} | {len(kata.known_bad)} | – | – | – | not recorded | – |")
            continue
        totals = [a + b for a, b in zip(totals, (len(kata.known_bad), m["generated"], m["equivalent"], m["killed"],
                                                 m["run"]), strict=True)]
        state = "stale: checks changed since" if kata.id in stale else "current"
        print(f"| {kata.id} | {len(kata.known_bad)} | {m['generated']} | {m['equivalent']} | "
              f"{m['killed']} / {m['run']} | {m['score']:.0%} | {state} |")
    score = totals[3] / totals[4] if totals[4] else 1.0
    print(f"| **all** | {totals[0]} | {totals[1]} | {totals[2]} | {totals[3]} / {totals[4]} | **{score:.1%}** | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
