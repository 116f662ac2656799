"""Start times of the CDC katas' services (grader/services/), medians of N runs each:

  PostgreSQL   initdb + start per run (the default way)  vs  copy of the cached template + start
  Connect      worker ready (REST lists the plugins) with Kafka's default plugin discovery
               (hybrid_warn: reflection over every jar)  vs  the grader's service_load

Targets (issue 17): PostgreSQL ready <= 2 s from its template, Connect worker ready <= 10 s.
One local broker serves every Connect run. Run from the repository root:
  python benchmarks/services_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader.broker.local import start_local  # noqa: E402
from grader.services import connect, postgres  # noqa: E402


def quiet(_msg: str) -> None:
    pass


def pg_with_initdb() -> float:
    """What a grader without a template would do: initdb into a fresh directory, then start."""
    t = time.monotonic()
    template = postgres.template_dir()
    moved = Path(tempfile.mkdtemp(prefix="kk-bench-tpl-")) / "t"
    shutil.move(str(template), str(moved))
    try:
        server = postgres.start_postgres(quiet)  # no template: initdb runs first
        elapsed = time.monotonic() - t
        server.stop()
    finally:
        shutil.rmtree(template, ignore_errors=True)
        shutil.move(str(moved), str(template))
        shutil.rmtree(moved.parent, ignore_errors=True)
    return elapsed


def pg_from_template() -> float:
    t = time.monotonic()
    server = postgres.start_postgres(quiet)
    elapsed = time.monotonic() - t
    server.stop()
    return elapsed


def connect_ready(bootstrap: str, discovery: str) -> float:
    connect.PLUGIN_DISCOVERY = discovery
    t = time.monotonic()
    worker = connect.start_connect(bootstrap, quiet)
    elapsed = time.monotonic() - t
    worker.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    postgres.ensure_template(quiet)
    connect.ensure_jars(quiet)
    load = subprocess.run(["cat", "/proc/loadavg"], capture_output=True, text=True).stdout.split()[:3]
    print(f"runs: {runs} each, interleaved; load average before: {' '.join(load)}")
    times: dict[str, list[float]] = {k: [] for k in ("pg initdb", "pg template", "connect hybrid_warn",
                                                     "connect service_load")}
    for _ in range(runs):  # interleaved, so a load spike hits both sides of a ratio alike
        times["pg initdb"].append(pg_with_initdb())
        times["pg template"].append(pg_from_template())
    broker = start_local(quiet)
    try:
        for _ in range(runs):
            times["connect hybrid_warn"].append(connect_ready(broker.bootstrap_servers, "hybrid_warn"))
            times["connect service_load"].append(connect_ready(broker.bootstrap_servers, "service_load"))
    finally:
        broker.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:22s} median {med[k]:6.2f} s   runs: {' '.join(f'{x:.2f}' for x in v)}")
    print(f"PostgreSQL: template {med['pg template']:.2f} s (target <= 2 s), "
          f"{med['pg initdb'] / med['pg template']:.1f}x faster than initdb per run")
    print(f"Connect:    service_load {med['connect service_load']:.2f} s (target <= 10 s), "
          f"{med['connect hybrid_warn'] / med['connect service_load']:.1f}x faster than the default discovery")


if __name__ == "__main__":
    main()
