"""Run a kata's hidden checks against one learner file, in a child pytest process (the judge).

The judge runs in its own process group with the kata's timeout; it never imports the
learner's code, which runs in learner host processes inside the isolation layers of
grader/host/sandbox.py. Verdicts come back over a pipe only the judge holds: the runner
trusts that channel and the judge's exit status, nothing the learner's code can write.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from grader import clientconfig, picture_data, scoring, services, shared_run
from grader import proc as proc_guard
from grader.catalog import Kata
from grader.errors import CourseError, InfraError
from grader.host import sandbox
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
    run_id = run_id or uuid.uuid4().hex[:6]
    shared = clientconfig.active() if clientconfig.applies_to(kata) else None
    scratch = Path(tempfile.mkdtemp(prefix="kata-scratch-"))
    try:
        with tempfile.TemporaryDirectory(prefix="kata-run-") as tmp:
            proc, timed_out, duration, events, output = _run_judge(
                kata, impl_path, bootstrap_servers, Path(tmp), scratch, timeout, run_id, broker_alive,
                cluster_file, only, stop_at_first_failure, shared)
            host_logs = "".join(p.read_text(errors="replace")[-20000:] for p in sorted(Path(tmp).glob("host-*.log")))
    finally:
        _kill_strays(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        if shared is not None:  # a shared cluster keeps nothing of this run (its ACLs allow this prefix)
            shared_run.cleanup(bootstrap_servers, shared, shared.run_prefix(run_id))
    dead = services.dead(kata.id)
    if dead:  # a check that lost its database or Connect worker says nothing about the learner's code
        raise InfraError(f"The {dead[0]} service of {kata.id} stopped while the checks ran; the verdicts are void.",
                         detail=services.death_report(kata.id), next_step="run the same command again.")
    result = KataResult(kata_id=kata.id, slug=kata.slug, title=kata.title, checklist=kata.checklist,
                        target=target, status=FAIL, duration=duration)
    result.checks = _checks_from(events)
    result.isolation = next((e for e in events if e.get("event") == "isolation"), {"isolation": "none"})
    collect_errors = [e for e in events if e["event"] == "collect-error"]
    if collect_errors:
        raise InfraError(f"The hidden checks of {kata.id} could not be loaded (a course bug, not your code).",
                         detail=collect_errors[0]["message"][-2000:],
                         next_step="report it to the course authors; instructors: run `grade validate "
                         f"{kata.id}`.")
    running = _last_started(events, result.checks)
    result.checks += _unfinished(events, result.checks, running if timed_out else "")
    scoring.apply(kata, result.checks)
    if not result.checks:
        result.declared_max = scoring.declared_max(kata)
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
    elif exits := [e for e in events if e.get("event") == "learner-exit"]:
        result.status = CRASHED
        # The check that was running when the host first died (later checks get a new host, and may die too).
        first = events.index(exits[0])
        during = _last_started(events[:first], [])
        result.message = _host_exit_message(exits[0].get("code"), during, host_logs)
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


def _exit_words(code) -> str:
    if isinstance(code, int) and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _run_judge(kata: Kata, impl_path: Path, bootstrap_servers: str, tmpdir: Path, scratch: Path, timeout: float,
               run_id: str, broker_alive, cluster_file: Path | None, only: str | None,
               stop_at_first_failure: bool = False, shared: clientconfig.ClientSettings | None = None):
    output_file = tmpdir / "output.txt"
    ini = tmpdir / "pytest.ini"
    # An empty ini keeps the course repository's own pytest settings (testpaths,
    # plugins) out of the checks' run.
    ini.write_text("[pytest]\n")
    sandbox.prepare_scratch(scratch)
    learner_dir = scratch / "learner"
    learner_dir.mkdir(mode=0o755)
    learner_dir.chmod(0o755)
    copy = learner_dir / impl_path.name
    shutil.copyfile(impl_path, copy)
    copy.chmod(0o644)
    cfg = {**sandbox.settings(scratch, timeout), "private": str(tmpdir), "hidden": _hidden_paths(kata)}
    if "user" in cfg["layers"] and "bwrap" not in cfg["layers"]:  # bwrap's mounts hide them anyway
        _hide_course_files(kata)
    (tmpdir / "host.json").write_text(json.dumps(cfg))
    read_end, write_end = os.pipe()
    cmd = [sys.executable, "-m", "pytest", str(kata.checks_dir), "-c", str(ini),
           "--rootdir", str(kata.checks_dir), "-p", "grader.pytest_plugin", "-p", "no:cacheprovider",
           "-q", "--no-header", "-rN", "--tb=short", "--color=no", f"--basetemp={scratch / 'checks-tmp'}",
           f"--kata-impl={copy}", f"--kafka-bootstrap={bootstrap_servers}", f"--kata-verdict-fd={write_end}",
           f"--kata-host={tmpdir / 'host.json'}", f"--kata-run-id={run_id}"]
    if shared is not None:  # the judge's private folder: the learner host gets its copy from the judge
        (tmpdir / "client.json").write_text(json.dumps({"properties": shared.client_properties(),
                                                         "run_prefix": shared.run_prefix(run_id),
                                                         "name_prefix": shared.prefix}))
        cmd.append(f"--kata-client={tmpdir / 'client.json'}")
    if cluster_file:
        cmd.append(f"--kata-cluster={cluster_file}")
    services_file = services.file_for(kata.id)
    if services_file:
        cmd.append(f"--kata-services={services_file}")
    if only:
        cmd.append(f"--kata-only={only}")
    if stop_at_first_failure:  # a mutant is killed by its first failing check: the rest would only cost time
        cmd.append("--maxfail=1")
    # faulthandler: a check process killed by a fatal signal leaves its Python stacks in the output.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_package_parent()), env.get("PYTHONPATH")]))
    events: list[dict] = []
    reader = threading.Thread(target=_read_channel, args=(read_end, events), daemon=True)
    started = time.monotonic()
    try:
        with open(output_file, "wb") as out:
            proc = proc_guard.track(subprocess.Popen(proc_guard.guarded(cmd), stdout=out, stderr=subprocess.STDOUT,
                                                     stdin=subprocess.DEVNULL, env=env, cwd=str(tmpdir),
                                                     start_new_session=True, pass_fds=(write_end,)))
            os.close(write_end)
            write_end = -1
            reader.start()
            try:
                timed_out = _wait(proc, timeout, broker_alive)
            finally:
                proc_guard.untrack(proc)
    finally:
        if write_end >= 0:
            os.close(write_end)
    reader.join(timeout=10)  # the judge (the only writer) is gone: the channel is at its end
    return proc, timed_out, time.monotonic() - started, list(events), _tail(output_file)


def _read_channel(fd: int, events: list[dict]) -> None:
    """Verdict events from the judge's pipe: JSON lines; a half-written last line is dropped."""
    buffer = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and isinstance(event.get("event"), str):
                    events.append(event)


def _hidden_paths(kata: Kata) -> list[str]:
    """Files the learner host must not be able to read; its probe tries each of them."""
    paths = sorted(str(p) for p in kata.checks_dir.glob("*.py"))[:1]
    if kata.solution_path.exists():
        paths.append(str(kata.solution_path))
    from grader.progress import data_root
    progress = data_root() / "progress"
    paths += [str(p) for p in sorted(progress.glob("*.json"))[:1]] if progress.is_dir() else []
    return paths


def _hide_course_files(kata: Kata) -> None:
    """As root: other users (the learner host's uid) may not enter checks/, solutions/ or the clone's git
    objects (every committed solution is in them)."""
    course_root = kata.checks_dir.parent.parent
    sandbox.hide_from_others([kata.checks_dir.parent, kata.solution_path.parent.parent, *sandbox.git_dirs(course_root)])


def _kill_strays(scratch: Path) -> None:
    """SIGKILL every process still running from this run's scratch directory (a learner host's
    forked child that left its process group). Found by its cwd or its environment."""
    marker = str(scratch).rstrip("/")
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if cwd == marker or cwd.startswith(marker + "/") or f"HOME={marker}/".encode() in environ:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


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
                                           duration=e.get("duration", 0.0),
                                           pictures=_pictures(e.get("pictures")))
    return list(by_node.values())


def _pictures(raw) -> list[dict]:
    """The pictures of a verdict, each checked again as plain data: one that is not is dropped (the text stays)."""
    out = []
    for picture in raw if isinstance(raw, list) else []:
        try:
            out.append(picture_data.validate(picture))
        except (picture_data.PictureError, AttributeError, TypeError, ValueError):
            continue
    return out[:8]


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


def _host_exit_message(code, running: str, logs: str) -> str:
    """The learner host ended under a check: how, during which check, and its fault dump if it crashed."""
    where = f" while the check '{running}' was running" if running else ""
    if isinstance(code, int) and code < 0 and code != -signal.SIGKILL:
        return _signal_message(-code, running, logs, who="The process running your code")
    return (f"The process running your code ended abruptly ({_exit_words(code)}){where} — your code may have "
            "called os._exit() or sys.exit(), been killed (os.kill, or the system when memory ran out), or "
            "crashed the interpreter.")


def _signal_message(signum: int, running: str, output: str, who: str = "The check process") -> str:
    """A check process killed by a signal: its name, and the fault dump's first lines, not pytest frames."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    where = f" while the check '{running}' was running" if running else ""
    text = f"{who} was killed by {name}{where}. "
    if name == "SIGKILL":
        text += ("Something sent it SIGKILL: your code (os.kill), or the system when memory ran out. ")
    else:
        text += ("The Python interpreter crashed: usually a C library (librdkafka) used from a callback or "
                 "thread in a way it does not allow, or an object used after close(). ")
    dump = output[output.find("Fatal Python error"):] if "Fatal Python error" in output else ""
    if dump:
        text += "Fault dump (first lines):\n" + "\n".join("  " + line for line in _dump_lines(dump)[:14])
    return text.rstrip()


def _dump_lines(dump: str) -> list[str]:
    """faulthandler's dump, cut to what a learner can use: the error line, then each thread that was
    running their code or a library's, with those frames only (pytest's, the grader's and the standard
    library's say nothing to a learner; idle threads are dropped)."""
    harness = ("/_pytest/", "/pluggy/", "/grader/", "/checks/")
    lines = [line for line in dump.splitlines() if line.strip()]
    head, blocks = lines[:1], []
    for line in lines[1:]:
        if not line.lstrip().startswith("File"):
            blocks.append([line])
        elif blocks and not any(h in line for h in harness) and not _stdlib_frame(line):
            blocks[-1].append(line)
    return head + [line for block in blocks if len(block) > 1 for line in block]


def _stdlib_frame(line: str) -> bool:
    return ("/lib/python3" in line and "-packages/" not in line) or "<frozen " in line


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
