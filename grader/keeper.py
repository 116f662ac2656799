"""Keep a restarted broker node tied to the grader's life.

A fault check restarts a node it stopped; that node must outlive the check's process (the
next run of the kata uses the same cluster) but never the grader that owns the cluster, even
a SIGKILLed one, which runs no cleanup. So the check starts the node through this keeper:

    python -m grader.keeper OWNER_PID -- java ... kafka.Kafka server.properties

The node dies with the keeper (setpriv --pdeathsig), and the keeper ends the node once the
owner is gone. Signals to the keeper's process group (how the grader and the checks stop
nodes) reach the node directly; the keeper just outlives it, so "the keeper's pid is gone"
still means "the node has exited".
"""

from __future__ import annotations

import signal
import subprocess
import sys

from grader.proc import guarded, pid_running

OWNER_POLL_S = 0.5


def main(argv: list[str]) -> int:
    owner, sep, *command = argv
    if sep != "--" or not command:
        print("usage: python -m grader.keeper OWNER_PID -- COMMAND...", file=sys.stderr)
        return 2
    # Started before the keeper ignores anything: an ignored signal stays ignored across exec, and a JVM
    # started that way ignores SIGTERM for good (no controlled shutdown, ever).
    node = subprocess.Popen(guarded(command))
    # The node gets these too (they are sent to the keeper's process group): wait for it to shut down.
    # SIGINT is how PostgreSQL is asked for a fast shutdown (grader/services/postgres.py).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            return node.wait(timeout=OWNER_POLL_S)
        except subprocess.TimeoutExpired:
            if not pid_running(int(owner)):
                node.kill()
                return node.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
