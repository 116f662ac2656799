"""Run one learner function in a child process, with callbacks the checks control.

Checks that prove failure behaviour (commit, rebalance, transactions) must crash the
learner's process at an exact point, without a timing race. The child gives the
learner's function a `process(msg)` callback that records each message durably
(append + fsync to a file the check owns) and SIGKILLs its own process right after
the N-th record: a crash after processing and before any commit, every time.

A check starts it with grader.kit.ChildRun, which runs it in a learner host
(grader/host/server.py --child SPEC.json), under the same sandbox as every learner call.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

HOLD_LIMIT_S = 300.0  # a check kills a held child long before this; never outlive a forgotten check
GAP_NOTED_S = 0.3  # shorter gaps between should_stop() calls are never written down (a contract is ~1 s)


def _record_line(msg) -> dict:
    """A message (confluent_kafka.Message or anything else) as one JSON-able dict."""
    if hasattr(msg, "topic") and callable(msg.topic):
        key, value = msg.key(), msg.value()
        return {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                "key": key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
                "value": value.decode("utf-8", "replace") if isinstance(value, bytes) else value}
    return {"value": msg if isinstance(msg, (str, int, float, bool, type(None), list, dict)) else repr(msg)}


def _hold(msg, hold_file: Path) -> None:
    """The crash point *inside* processing: say which record is held, wait, and let the check
    watch the broker (what did the consumer commit meanwhile?) before it SIGKILLs us. The held
    record is never recorded as processed: its processing never finished."""
    held = {k: v for k, v in _record_line(msg).items() if k in ("topic", "partition", "offset")}
    if not held:
        held = {"not_a_message": repr(msg)[:200]}
    tmp = hold_file.with_name(hold_file.name + ".tmp")
    tmp.write_text(json.dumps(held))
    tmp.replace(hold_file)  # atomic: the check never reads half a file
    deadline = time.monotonic() + HOLD_LIMIT_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)


def _reset_time(path: Path, now: float) -> float:
    """When the check asked for the reset (its time.monotonic(), one clock for every process); consumed."""
    try:
        at = float(json.loads(path.read_text())["at"])
    except (OSError, ValueError, KeyError, TypeError):
        at = now  # unreadable: as if it came just now
    with contextlib.suppress(OSError):
        path.unlink()
    return at


def build_callbacks(spec: dict, db_crash=None) -> dict:
    records = Path(spec["records_file"])
    crash_after = spec.get("crash_after")
    hold_at = spec.get("hold_at")
    stop_file = Path(spec["stop_file"])
    count = 0
    calls = 0

    def process(msg) -> None:
        nonlocal count, calls
        if db_crash is not None:
            db_crash.control_point("process()")
        calls += 1
        if calls == hold_at:
            _hold(msg, Path(spec["hold_file"]))  # never returns
        with records.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({**_record_line(msg), "pid": os.getpid()}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        count += 1
        if crash_after is not None and count >= crash_after:
            # The crash the check is about: processed, not yet committed.
            os.kill(os.getpid(), signal.SIGKILL)

    gap_file, gap_reset = Path(spec["stop_gap_file"]), stop_file.with_name("stop_gap_reset")
    last_call: float | None = None
    last_reset_look = time.monotonic()
    max_gap = 0.0

    def should_stop() -> bool:
        # "Checks should_stop() at least once a second": the longest gap between two calls, for the check to
        # time. Only a gap past GAP_NOTED_S is written down, and only such a call must know of a reset first,
        # so the reset file is looked at no more than every GAP_NOTED_S: any gap that long means the last look
        # is at least that old. A busy loop costs one stat() per call (the stop file).
        nonlocal last_call, last_reset_look, max_gap
        now = time.monotonic()
        if now - last_reset_look > GAP_NOTED_S:
            last_reset_look = now
            if gap_reset.exists():
                at = _reset_time(gap_reset, now)
                max_gap = 0.0
                gap_file.unlink(missing_ok=True)
                if last_call is None or at > last_call:
                    last_call = None  # the gap the reset fell into is the one the check forgives
        if last_call is not None and now - last_call > max(max_gap, GAP_NOTED_S):
            max_gap = now - last_call
            tmp = gap_file.with_name(gap_file.name + ".tmp")
            tmp.write_text(json.dumps({"max_gap_s": round(max_gap, 3)}))
            tmp.replace(gap_file)
        last_call = now
        return stop_file.exists()

    checkpoints = 0
    crash_at_checkpoint = spec.get("crash_after_checkpoint")

    def checkpoint(label: str = "") -> None:
        """A second crash point the contract can place anywhere (e.g. between two writes)."""
        nonlocal checkpoints
        checkpoints += 1
        with records.with_name("checkpoints.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"label": label, "n": checkpoints}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if crash_at_checkpoint is not None and checkpoints >= crash_at_checkpoint:
            os.kill(os.getpid(), signal.SIGKILL)

    available = {"process": process, "should_stop": should_stop, "checkpoint": checkpoint}
    return {name: available[name] for name in spec.get("callbacks", ["process", "should_stop"])}


def run_child(spec: dict, load, loaded: set) -> int:
    """Run spec["function"] of the learner's file with the callbacks the check asked for (in the learner host)."""
    db_crash = None
    if spec.get("crash_after_db_commit"):
        from grader import dbcrash
        db_crash = dbcrash.CommitCrash(spec["crash_after_db_commit"], Path(spec["db_crash_file"]))
        dbcrash.install(db_crash)  # before the learner's module imports sqlite3's names
    try:
        module = load(spec["impl"])
        func = getattr(module, spec["function"])
        result = func(**spec.get("kwargs", {}), **build_callbacks(spec, db_crash))
    except:  # noqa: E722 - also what is no BaseException: confluent-kafka re-raises a callback's error as a bare KafkaError
        _, exc, tb = sys.exc_info()
        # The exit code carries the outcome, whatever happens to the file: a check that limits file sizes
        # (limits={"fsize": ...}, a full disk) may leave no room for the report.
        with contextlib.suppress(OSError):
            Path(spec["error_file"]).write_text(
                json.dumps({"type": type(exc).__name__, "message": str(exc),
                            "traceback": "".join(traceback.format_tb(tb))[-3000:] + f"{type(exc).__name__}: {exc}"}))
        return 1
    # Returned normally: exit 0 even when the result does not fit under the check's file-size limit, so a
    # check can tell a function that raised from one that swallowed its own error (kata-11's full disk).
    with contextlib.suppress(OSError):
        Path(spec["result_file"]).write_text(json.dumps({"result": result}, default=repr))
    return 0
