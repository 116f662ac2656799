"""Run a kata's hidden checks against one learner file, in a child pytest process.

The child runs in its own process group with the kata's timeout, so hung learner
code, stray threads or forked children never outlive the verdict.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from grader import proc as proc_guard
from grader.catalog import Kata
from grader.errors import CourseError, InfraError
from grader.results import CRASHED, ERROR, FAIL, NOT_RUN, PASS, SKIP, TIMEOUT, CheckResult, KataResult

OUTPUT_TAIL_BYTES = 8000
# pytest's own exit codes that mean "the harness broke", not "a check failed".
PYTEST_INTERNAL_ERROR, PYTEST_USAGE_ERROR, PYTEST_NO_TESTS = 3, 4, 5


class BrokerDied(Exception):
    """The broker's process ended while checks ran: the caller reports an infrastructure error."""


def run_checks(kata: Kata, impl_path: Path, bootstrap_servers: str, target: str,
               timeout_s: float | None = None, run_id: str | None = None,
               broker_alive: Callable[[], bool] | None = None, cluster_file: Path | None = None,
               only: str | None = None, stop_at_first_failure: bool = False) -> KataResult:
    impl_path = Path(impl_path)
    if not impl_path.is_file():
        raise CourseError(f"The file to grade does not exist: {impl_path}.",
                          next_step=f"restore it with `git checkout -- {impl_path}` or check the kata folder.")
    if not kata.checks_dir.is_dir():
        raise CourseError(f"The hidden checks of {kata.id} are missing: {kata.checks_dir} does not exist.",
                          next_step="this is a course problem, not your code: update your clone (`git pull`).")
    timeout = timeout_s or kata.timeout_s
    with tempfile.TemporaryDirectory(prefix="kata-run-") as tmp:
        tmpdir = Path(tmp)
        results_file = tmpdir / "results.jsonl"
        output_file = tmpdir / "output.txt"
        ini = tmpdir / "pytest.ini"
        # An empty ini keeps the course repository's own pytest settings (testpaths,
        # plugins) out of the checks' run.
        ini.write_text("[pytest]\n")
        cmd = [sys.executable, "-m", "pytest", str(kata.checks_dir), "-c", str(ini),
               "--rootdir", str(kata.checks_dir), "-p", "grader.pytest_plugin", "-p", "no:cacheprovider",
               "-q", "--no-header", "-rN", "--tb=short", "--color=no",
               f"--kata-impl={impl_path}", f"--kafka-bootstrap={bootstrap_servers}",
               f"--kata-results={results_file}", f"--kata-run-id={run_id or uuid.uuid4().hex[:6]}"]
        if cluster_file:
            cmd.append(f"--kata-cluster={cluster_file}")
        if only:
            cmd.append(f"--kata-only={only}")
        if stop_at_first_failure:  # a mutant is killed by its first failing check: the rest would only cost time
            cmd.append("--maxfail=1")
        # faulthandler: a check process killed by a fatal signal leaves its Python stacks in the output.
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_package_parent()), env.get("PYTHONPATH")]))
        started = time.monotonic()
        with open(output_file, "wb") as out:
            proc = proc_guard.track(subprocess.Popen(proc_guard.guarded(cmd), stdout=out, stderr=subprocess.STDOUT,
                                                     stdin=subprocess.DEVNULL, env=env, cwd=str(tmpdir),
                                                     start_new_session=True))
            try:
                timed_out = _wait(proc, timeout, broker_alive)
            finally:
                proc_guard.untrack(proc)
        duration = time.monotonic() - started
        events = _read_events(results_file)
        output = _tail(output_file)
    result = KataResult(kata_id=kata.id, slug=kata.slug, title=kata.title, checklist=kata.checklist,
                        target=target, status=FAIL, duration=duration)
    result.checks = _checks_from(events)
    collect_errors = [e for e in events if e["event"] == "collect-error"]
    if collect_errors:
        raise InfraError(f"The hidden checks of {kata.id} could not be loaded (a course bug, not your code).",
                         detail=collect_errors[0]["message"][-2000:],
                         next_step="report it to the course authors; instructors: run `grade validate "
                         f"{kata.id}`.")
    running = _last_started(events, result.checks)
    result.checks += _unfinished(events, result.checks, running if timed_out else "")
    if timed_out:
        result.status = TIMEOUT
        result.message = (f"Your code did not finish within {timeout:.0f}s"
                          + (f" while the check '{running}' was running" if running else "")
                          + ". Look for a loop that never ends, a poll() without a way out, "
                          "a flush()/close() that waits forever, or a future's .result() called without a "
                          "timeout (e.g. on an AdminClient that was already garbage-collected).")
    elif proc.returncode in (PYTEST_INTERNAL_ERROR, PYTEST_USAGE_ERROR) and not result.checks:
        raise InfraError(f"The check runner for {kata.id} failed to start (pytest exit {proc.returncode}).",
                         detail=output[-2000:], next_step="run the same command again; if it repeats, "
                         "reinstall with `pip install -e .`.")
    elif proc.returncode == PYTEST_NO_TESTS:
        raise CourseError(f"{kata.checks_dir} holds no checks (no test_* functions were collected).",
                          next_step="instructors: add checks, then run `grade validate`.")
    elif proc.returncode < 0:
        result.status = CRASHED
        result.message = _signal_message(-proc.returncode, running, output)
    elif proc.returncode not in (0, 1) and not any(c.status != NOT_RUN for c in result.checks):
        result.status = CRASHED
        result.message = (f"The check process ended abruptly (exit {proc.returncode}) — your code may have "
                          f"called os._exit() or crashed the interpreter.\n{output[-1500:]}")
    elif result.checks and all(c.status in (PASS, SKIP) for c in result.checks) and proc.returncode == 0:
        result.status = PASS
    return result


def _wait(proc: subprocess.Popen, timeout: float, broker_alive: Callable[[], bool] | None) -> bool:
    """Wait for the run; on timeout kill the whole process group. Returns True on timeout.

    With broker_alive, a broker that dies mid-run ends the run at once (BrokerDied)
    instead of letting every check wait for its deadline.
    """
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            try:
                proc.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
                if broker_alive is not None and not broker_alive():
                    raise BrokerDied() from None
    except BaseException:  # Ctrl-C or a dead broker: never leave learner code running
        _kill_group(proc)
        raise
    _kill_group(proc)  # also reaps children the learner code left behind
    return timed_out


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the last line of a killed run may be half-written
    return events


def _checks_from(events: list[dict]) -> list[CheckResult]:
    by_node: dict[str, CheckResult] = {}
    for e in events:
        if e["event"] != "result":
            continue
        status = {"passed": PASS, "failed": FAIL, "skipped": SKIP}[e["outcome"]]
        if e["when"] != "call" and status == FAIL:
            status = ERROR
        existing = by_node.get(e["nodeid"])
        if existing and existing.status in (FAIL, ERROR):
            continue  # a teardown report must not hide the call's failure
        by_node[e["nodeid"]] = CheckResult(name=e["name"], status=status, doc=e.get("doc", ""),
                                           message=e.get("message", ""), output=e.get("output", ""),
                                           duration=e.get("duration", 0.0))
    return list(by_node.values())


def _unfinished(events: list[dict], finished: list[CheckResult], running: str) -> list[CheckResult]:
    """The collected checks without a verdict: the one a timeout stopped, and those never reached."""
    collected = next((e for e in events if e["event"] == "collected"), None)
    if collected is None:
        return []
    done = {c.name for c in finished}
    out = []
    for nodeid in collected["nodeids"]:
        name = nodeid.split("::")[-1]
        if name in done:
            continue
        stopped = name == running
        out.append(CheckResult(name=name, status=TIMEOUT if stopped else NOT_RUN,
                               doc=collected.get("docs", {}).get(nodeid, ""),
                               message="did not finish: the run's timeout stopped it" if stopped else "not run"))
    return out


def _signal_message(signum: int, running: str, output: str) -> str:
    """A check process killed by a signal: its name, and the fault dump's first lines, not pytest frames."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    where = f" while the check '{running}' was running" if running else ""
    text = (f"The check process was killed by {name}{where}. ")
    if name == "SIGKILL":
        text += ("Something sent it SIGKILL: your code (os.kill), or the system when memory ran out. ")
    else:
        text += ("The Python interpreter crashed: usually a C library (librdkafka) used from a callback or "
                 "thread in a way it does not allow, or an object used after close(). ")
    dump = output[output.find("Fatal Python error"):] if "Fatal Python error" in output else ""
    if dump:
        # The learner's and the library's frames; pytest's and the grader's own say nothing to a learner.
        harness = ("/_pytest/", "/pluggy/", "/grader/", "/checks/")
        lines = [line for line in dump.splitlines() if line.strip()
                 and not (line.lstrip().startswith("File") and any(h in line for h in harness))][:14]
        text += "Fault dump (first lines):\n" + "\n".join("  " + line for line in lines)
    return text.rstrip()


def _last_started(events: list[dict], finished: list[CheckResult]) -> str:
    done = {c.name for c in finished}
    starts = [e["nodeid"].split("::")[-1] for e in events if e["event"] == "start"]
    return starts[-1] if starts and starts[-1] not in done else ""


def _tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - OUTPUT_TAIL_BYTES))
        return fh.read().decode("utf-8", "replace")


def _package_parent() -> Path:
    # The child must import this same grader (an editable install or a source checkout).
    return Path(__file__).resolve().parent.parent
