"""Every one-broker kata on a shared, secured cluster (issue 16 part 6): validates, and leaves nothing behind.

Starts the local broker secured like an instructor's cluster (SASL/SCRAM-SHA-512, the KRaft
StandardAuthorizer, prefixed ACLs that allow the grading principal only `grading.`; see
grader/broker/secure.py), writes the grading principal's client config, then runs

    grade validate KATA... --client-config FILE --jobs N --json

(solution passes, stub fails, every known-bad patch fails in its check) for every kata that runs
on one broker (a kata with services gets a local broker of its own, as `grade` does), and lists
what the broker holds afterwards, as its super user.
With --compare it also validates the same katas on a plain local broker in the same run (ratio).

Run from the repository root:  python benchmarks/shared_cluster.py [--jobs 2] [--compare] [KATA...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import shared_run  # noqa: E402
from grader.broker.local import start_local  # noqa: E402
from grader.broker.secure import SaslSetup  # noqa: E402
from grader.catalog import load_course  # noqa: E402
from grader.clientconfig import ClientSettings  # noqa: E402

PREFIX = "grading."


def validate(katas: list[str], jobs: int, extra: list[str]) -> tuple[float, dict]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grader", "validate", *katas, "--jobs", str(jobs), "--json",
                           *extra], cwd=ROOT, capture_output=True, text=True)
    took = time.monotonic() - started
    try:
        return took, json.loads(proc.stdout)
    except ValueError:
        sys.exit(f"grade validate ended with exit {proc.returncode} and no JSON:\n{proc.stderr[-3000:]}")


def leftovers(broker, setup: SaslSetup) -> dict[str, list[str]]:
    view = ClientSettings(setup.admin_properties(), PREFIX)
    deadline = time.monotonic() + 60  # deletions finish asynchronously; killed members' sessions expire
    while True:
        found = shared_run.names(broker.bootstrap_servers, view, "")
        left = {kind: [n for n in names if not n.startswith("__")] for kind, names in found.items()}
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("katas", nargs="*", help="default: every kata that runs on one broker")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="also validate them on a plain local broker")
    args = parser.parse_args()
    course = load_course(ROOT)
    katas = args.katas or [k.id for k in course.katas if not k.needs_own_cluster]
    setup = SaslSetup(prefix=PREFIX)
    started = time.monotonic()
    broker = start_local(print, secure=setup)
    print(f"secured broker at {broker.bootstrap_servers}, ready in {time.monotonic() - started:.1f}s", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = setup.write_client_config(Path(tmp) / "grader.properties", broker.bootstrap_servers)
            took, report = validate(katas, args.jobs, ["--client-config", str(config)])
        left = leftovers(broker, setup)
    finally:
        broker.stop()
    for kata in report["katas"]:
        runs = ", ".join(f"{r['target']}={r['status']}" for r in kata["runs"])
        print(f"  {kata['kata']}: {'ok' if kata['ok'] else 'FAILED'}  {runs}"
              + (f"  problems: {kata['problems']}" if kata["problems"] else ""))
    ok = sum(k["ok"] for k in report["katas"])
    runs = sum(len(k["runs"]) for k in report["katas"])
    print(f"SASL+ACL cluster: {ok} of {len(katas)} katas validated ({runs} runs) in {took:.1f}s with --jobs "
          f"{args.jobs}; left behind: {left['topics'] or 'no topics'}, {left['groups'] or 'no groups'}")
    if args.compare:
        plain, plain_report = validate(katas, args.jobs, ["--broker", "local"])
        plain_ok = sum(k["ok"] for k in plain_report["katas"])
        print(f"plain local broker: {plain_ok} of {len(katas)} validated in {plain:.1f}s; "
              f"secured / plain = {took / plain:.2f}")
    sys.exit(0 if ok == len(katas) and not any(left.values()) else 1)


if __name__ == "__main__":
    main()
