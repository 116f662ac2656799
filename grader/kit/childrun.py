"""ChildRun: a learner function running in a learner host of its own (crash points, holds).

The host runs grader/child.py's callbacks under the same sandbox as every learner call
(grader/host/sandbox.py); records, results and errors come back as JSON files the check reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from grader.host import sandbox
from grader.kit import learner


class ChildRun:
    """A learner function running in its own process (see grader/child.py).

    Usage in a check:
        run = ChildRun(impl_path, "consume", {"bootstrap_servers": ..., "topic": t, "group_id": g},
                       workdir=tmp_path, crash_after=5)
        run.wait(timeout=20)          # returns the exit code (-9 after the planned crash)
        run.records()                 # what the learner's process() saw, in order

    Add "checkpoint" to callbacks (and crash_after_checkpoint=N) to give the learner a
    checkpoint(label) callback the contract places between two steps: a crash there, every time.
    With hold_at=N, the N-th process() call never returns: it writes the record's position to
    run.hold_file and waits, so the check can look at the broker mid-processing, then kill().
    With crash_after_db_commit=N, the process SIGKILLs itself the first time the learner's code
    regains control after its N-th SQLite transaction that changed rows (grader/dbcrash.py):
    run.db_crash() then says where it was. A crash between two transactions of one apply step.
    run.max_stop_gap() is the longest the learner's code went without calling should_stop(), to time a
    "checks should_stop() at least once a second" contract (reset_stop_gap() after a deliberate block).
    limits= lowers the host's rlimits for this run only, e.g. {"fsize": 4096}: a disk that fills up
    (a write past it fails with EFBIG; SIGXFSZ is ignored in the host).
    """

    def __init__(self, impl_path, function: str, kwargs: dict, workdir, crash_after: int | None = None,
                 callbacks: tuple[str, ...] = ("process", "should_stop"), name: str = "child",
                 crash_after_checkpoint: int | None = None, hold_at: int | None = None,
                 limits: dict[str, int] | None = None, crash_after_db_commit: int | None = None):
        self.dir = Path(workdir) / f"{name}-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir(parents=True)
        self.spec = {"impl": str(impl_path), "function": function, "kwargs": kwargs,
                     "crash_after": crash_after, "callbacks": list(callbacks),
                     "crash_after_checkpoint": crash_after_checkpoint,
                     "hold_at": hold_at, "hold_file": str(self.dir / "hold.json"),
                     "stop_gap_file": str(self.dir / "stop_gap.json"),
                     "crash_after_db_commit": crash_after_db_commit, "db_crash_file": str(self.dir / "db_crash.json"),
                     "records_file": str(self.dir / "records.jsonl"), "stop_file": str(self.dir / "stop"),
                     "error_file": str(self.dir / "error.json"), "result_file": str(self.dir / "result.json")}
        (self.dir / "spec.json").write_text(json.dumps(self.spec))
        self.dir.chmod(0o777)  # the learner host may run as another user: it writes records here
        cfg = learner.pool().cfg
        learner.hand_over(cfg)
        self._log = open(self.dir / "output.txt", "wb")  # noqa: SIM115 - closed in wait()/kill()
        run_limits = {**cfg["limits"], **{k: min(v, cfg["limits"].get(k, v)) for k, v in (limits or {}).items()}}
        # A workdir outside the scratch (kata-04/05 keep record files in /dev/shm) is bound in for this host only.
        outside = () if self.dir.resolve().is_relative_to(Path(cfg["scratch"]).resolve()) else (str(self.dir),)
        argv, env, cwd = sandbox.command(cfg, ["--child", str(self.dir / "spec.json"), json.dumps(run_limits)],
                                         binds=outside)
        # Its own session, under the same layers as every learner call; the runner's timeout kills it too.
        self.proc = _HostProcess(learner.spawn(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True), cfg)

    @property
    def hold_file(self) -> Path:
        return Path(self.spec["hold_file"])

    def stop(self) -> None:
        """Ask politely: the learner's should_stop() callback starts returning True."""
        (self.dir / "stop").touch()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever it forked

    @property
    def crashed_as_planned(self) -> bool:
        return self.proc.poll() == -9

    def max_stop_gap(self) -> float:
        """The longest time the learner's code went between two should_stop() calls (since reset_stop_gap())."""
        path = Path(self.spec["stop_gap_file"])
        return json.loads(path.read_text())["max_gap_s"] if path.exists() else 0.0

    def reset_stop_gap(self) -> None:
        """Forget the gaps so far (e.g. after the check itself blocked the learner's code on purpose)."""
        # When: the child looks for a reset only every 0.3 s (grader/child.py) and must know whether it came
        # before or after the learner's last call. Until it looks, max_stop_gap() says 0.
        tmp = self.dir / "stop_gap_reset.tmp"
        tmp.write_text(json.dumps({"at": time.monotonic()}))
        tmp.replace(self.dir / "stop_gap_reset")
        Path(self.spec["stop_gap_file"]).unlink(missing_ok=True)

    def db_crash(self) -> dict | None:
        """Where the crash_after_db_commit crash happened: {"commits": N, "next": what was about to run}."""
        path = Path(self.spec["db_crash_file"])
        return json.loads(path.read_text()) if path.exists() else None

    def records(self) -> list[dict]:
        path = self.dir / "records.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def error(self) -> dict | None:
        path = self.dir / "error.json"
        return json.loads(path.read_text()) if path.exists() else None

    def result(self):
        path = self.dir / "result.json"
        return json.loads(path.read_text())["result"] if path.exists() else None

    def output(self) -> str:
        path = self.dir / "output.txt"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def close(self) -> None:
        self.kill()
        self._log.close()


class _HostProcess:
    """The Popen of a ChildRun's learner host, with Popen's meaning of returncode under bwrap too."""

    def __init__(self, proc: subprocess.Popen, cfg: dict):
        self._proc, self._cfg = proc, cfg
        self.pid = proc.pid

    @property
    def returncode(self) -> int | None:
        return sandbox.bwrap_exit(self._proc.returncode, self._cfg)

    def poll(self) -> int | None:
        return sandbox.bwrap_exit(self._proc.poll(), self._cfg)

    def wait(self, timeout: float | None = None) -> int:
        return sandbox.bwrap_exit(self._proc.wait(timeout), self._cfg)

    def send_signal(self, sig: int) -> None:
        """To the whole session: under bwrap the host is a child of bwrap, not this pid."""
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
