"""The cost of the judge / learner-host split, measured side by side in one run:

1. the proxy's round trip per call: `impl.fn(x)` (attribute read + call), a call on a held
   function, and a callback from learner code into the judge; at each isolation layer asked for;
2. the warm `grade kata-01 --solution` wall time of the tree before the split (a git ref,
   default BEFORE_REF, extracted to a temporary folder) and of this tree, alternating runs,
   medians, one ratio (the issue's bound: within 1.2x).

Run from the repository root:  python benchmarks/proxy.py [--runs 8] [--calls 2000] [--layers process,user+bwrap]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._timing import timed, tree_at  # noqa: E402
from grader.broker import reusable  # noqa: E402
from grader.host import sandbox  # noqa: E402
from grader.kit.learner import LearnerHost  # noqa: E402

BEFORE_REF = "5049295"  # the last main commit that imported learner code into the checks' process
LEARNER = '''
def echo(x):
    return x

def call_back(fn, n):
    for i in range(n):
        fn(i)
    return n
'''


def round_trips(layer: str, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kk-proxy-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the host may run as another user: it must reach the scratch dir inside
        scratch = Path(tmp) / "scratch"
        cfg = {**sandbox.settings(scratch, 600, mode=layer), "private": tmp, "hidden": []}
        sandbox.prepare_scratch(scratch)
        learner = scratch / "learner.py"
        learner.write_text(LEARNER)
        learner.chmod(0o644)
        host = LearnerHost(cfg, Path(tmp) / "host.log")
        try:
            started = time.perf_counter()
            impl = host.load(learner)
            load_s = time.perf_counter() - started
            echo = impl.echo
            for _ in range(50):  # warm up
                impl.echo(1)
            t0 = time.perf_counter()
            for i in range(calls):
                impl.echo(i)
            t1 = time.perf_counter()
            for i in range(calls):
                echo(i)
            t2 = time.perf_counter()
            impl.call_back(lambda i: None, calls)
            t3 = time.perf_counter()
            vm = _peak_vm(host, impl) if layer == "process" else {}
            payload = [(b"k" * 24, b"v" * 300)] * 1500  # one kata-17 round of events
            t4 = time.perf_counter()
            for _ in range(10):
                echo(payload)
            t5 = time.perf_counter()
        finally:
            host.close()
    return {**vm, "start+load ms": load_s * 1e3, "impl.fn(x) us": (t1 - t0) / calls * 1e6,
            "held fn(x) us": (t2 - t1) / calls * 1e6, "callback us": (t3 - t2) / calls * 1e6,
            "1500 events there+back ms": (t5 - t4) / 10 * 1e3}


def _peak_vm(host, impl) -> dict[str, float]:
    """Virtual memory of a host that runs a producer, a consumer and an admin client (RLIMIT_AS's margin)."""
    from grader.kit.learner import in_host

    clients = [in_host(impl, "confluent_kafka.Producer", {"bootstrap.servers": "127.0.0.1:1", "log_level": 0}),
               in_host(impl, "confluent_kafka.Consumer", {"bootstrap.servers": "127.0.0.1:1", "group.id": "g",
                                                          "log_level": 0}),
               in_host(impl, "confluent_kafka.admin.AdminClient", {"bootstrap.servers": "127.0.0.1:1", "log_level": 0})]
    clients[0].poll(0.5)
    status = Path(f"/proc/{host.proc.pid}/status").read_text()
    fields = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Vm")}
    return {"VmPeak MB": fields.get("VmPeak", 0) / 1024, "VmHWM MB": fields.get("VmHWM", 0) / 1024}



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--before-ref", default=BEFORE_REF)
    parser.add_argument("--layers", default="process,auto")
    parser.add_argument("--kata", default="kata-01")
    args = parser.parse_args()
    for layer in args.layers.split(","):
        figures = round_trips(layer, args.calls)
        label = sandbox.settings(Path("/tmp"), 1, mode=layer)["layers"] or ["process"]
        print(f"proxy round trips, layer {layer} ({'+'.join(label)}): "
              + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "PYTHONPATH")}
    broker, started = reusable.up(lambda m: None)
    try:
        with tree_at(args.before_ref) as before:
            trees = {"before": before, "after": ROOT}
            times: dict[str, list[float]] = {"before": [], "after": []}
            cmd = [sys.executable, "-m", "grader", args.kata, "--solution", "-q"]
            for tree in trees.values():  # warm the OS caches for both
                timed(cmd, tree, {**env, "PYTHONPATH": str(tree)})
            for _ in range(args.runs):
                for name, tree in trees.items():
                    times[name].append(timed(cmd, tree, {**env, "PYTHONPATH": str(tree)}))
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"warm grade {args.kata} --solution, median of {args.runs} alternating runs: before ({args.before_ref}) "
              f"{b:.2f}s, after (learner host, isolation auto) {a:.2f}s = {a / b:.2f}x (bound 1.2x)")
        for name in trees:
            print(f"   {name}: {', '.join(f'{x:.2f}' for x in times[name])}")
    finally:
        if started:
            reusable.down()


if __name__ == "__main__":
    main()
