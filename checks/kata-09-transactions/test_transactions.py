"""Hidden checks for kata-09 (transactions). Never shown to learners.

Each check causes the failure it is about for real: a SIGKILL in the middle of a transaction,
a process() that raises mid-batch, a second instance that takes over the transactional.id.
What counts is what a read_committed reader of the output topic sees afterwards.
"""

from __future__ import annotations

import gc
import time

from _kata09_support import (
    FENCING_CODES,
    CatchUp,
    OutputWatcher,
    crash_after_commit_wrapper,
    expected_output,
    make_pipeline,
    open_transaction_partitions,
    short,
    tally,
    wait_transactions_closed,
)
from confluent_kafka import KafkaError, KafkaException

from grader.kit import ChildRun, explain

BATCH = 5
CRASH_AFTER = 12  # the third batch of five: two transactions committed, one open
FAIL_AT = 8  # the second batch: one committed transaction before it
FENCE_AT = 8
FENCE_WAIT_S = 20.0  # how long the second instance may take to start and fence the first


class PoisonRecord(Exception):
    """What the checks' process() raises for the record it cannot handle."""


def _error_text(exc: BaseException | dict | None) -> str:
    if exc is None:
        return "no error"
    if isinstance(exc, dict):
        return f"{exc['type']}: {exc['message']}"
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "name"):
        return f"KafkaException {exc.args[0].name()}: {exc.args[0].str()}"
    return f"{type(exc).__name__}: {exc}"


def _forget(exc: BaseException | None) -> None:
    """Drop the frames an exception holds, so a consumer the learner left open is destroyed
    (and leaves its group) instead of lingering in this process."""
    while exc is not None:
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
    gc.collect()


def _finish(run: ChildRun, catch_up: CatchUp, label: str, did: str, timeout: float = 40) -> bool:
    """Let an instance work until it has caught up, then ask it to stop and wait for it."""
    caught_up = catch_up.wait(timeout)
    run.stop()
    code = run.wait(20)
    if code is None:
        run.kill()
        explain(did=f"{did}, waited until it had caught up, then made should_stop() return True",
                saw=f"the {label} instance was still running 20 s later",
                expected="run_pipeline to finish its current batch and return soon after should_stop() is True",
                nudge="check should_stop() between batches, and keep the consume() timeout short.")
    if code != 0:
        explain(did=did, saw=f"the {label} instance failed with {_error_text(run.error())} "
                f"(exit code {code}); its output:\n{run.output()[-1500:]}",
                expected="it processes the remaining input and returns when should_stop() is True")
    # Not caught up by the deadline is not a failure by itself: the read-back that follows
    # says exactly what is missing or duplicated.
    return caught_up


def _check_exactly_once(p, records, did: str, story: str) -> None:
    values = [r.value_text for r in records]
    missing, dupes, unexpected = tally(p, values)
    ghosts = [v for v in unexpected if v.startswith("GHOST-")]
    if ghosts:
        explain(did=did, saw=f"the output holds records of a transaction that was ABORTED in the input: "
                f"{short(ghosts)}",
                expected="only records of committed input transactions are transformed",
                nudge="aborted records stay in a topic's log. Which consumer setting decides whether your "
                "pipeline sees them?")
    if unexpected:
        explain(did=did, saw=f"output values that match no input: {short(unexpected)}",
                expected="each output value is its input value upper-cased (key unchanged), "
                f"e.g. {expected_output(p.inputs[0])!r}")
    if dupes:
        explain(did=did, saw=f"{story}: {len(dupes)} input records appear more than once in the committed "
                f"output (e.g. {short(dupes, 3)}) among {len(values)} records",
                expected=f"each of the {len(p.inputs)} inputs exactly once",
                nudge="records were done twice: their output was already committed, yet the instance that "
                "carried on read them again. Where does it learn how far its predecessor got, and was that "
                "progress written atomically with the output?")
    if missing:
        explain(did=did, saw=f"{story}: {len(missing)} input records never appear in the committed output "
                f"(e.g. {short(missing, 3)})",
                expected=f"each of the {len(p.inputs)} inputs exactly once",
                nudge="records were marked as consumed although their output was never committed. Progress "
                "(consumer offsets) must become visible exactly when the output does — in the same "
                "transaction, never on its own.")


def test_crash_mid_transaction_is_exactly_once(kafka, impl_path, tmp_path):
    """A SIGKILL in the middle of a transaction, then a restart: every input appears exactly once in the output."""
    p = make_pipeline(kafka, 30, ghosts=3)
    did = (f"produced {len(p.inputs)} records to the input topic (plus an aborted transaction), ran "
           f"{p.call(BATCH)} in a child process and SIGKILLed it right after its {CRASH_AFTER}th process() call "
           "(mid-transaction), then started it again with the same arguments and read the output with "
           "isolation.level=read_committed")
    first = ChildRun(impl_path, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, crash_after=CRASH_AFTER,
                     name="first")
    try:
        code = first.wait(45)
        if code is None:
            explain(did=f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records",
                    saw=f"after 45 s it had called process() only {len(first.records())} times",
                    expected=f"process(msg) called once per input record (at least {CRASH_AFTER} by then)",
                    nudge="subscribe to input_topic, consume batches and call process(msg) for every record.")
        if code != -9:
            explain(did=f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records",
                    saw=f"it stopped (exit code {code}) after {len(first.records())} process() calls: "
                    f"{_error_text(first.error())}",
                    expected=f"process(msg) called for each record, so the check could crash it after the "
                    f"{CRASH_AFTER}th")
    finally:
        first.close()

    second = ChildRun(impl_path, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, name="second")
    try:
        catch_up = CatchUp(p)
        _finish(second, catch_up, "restarted", did)
    finally:
        second.close()
    # Commit markers are written just after commit_transaction() returns: allow a moment.
    held = wait_transactions_closed(kafka, p.output_topic, timeout=5)
    if held:
        explain(did=did, saw=f"5 s after the restarted instance returned, output partitions {held} still had an open "
                "transaction (read_committed readers are stuck behind it)",
                expected="every transaction committed or aborted by the time run_pipeline returns",
                nudge="what happens to the transaction that was open when the first instance died, and to the "
                "one in progress when should_stop() turns True?")
    records = kafka.read_all(p.output_topic, isolation="read_committed")
    _check_exactly_once(p, records, did, f"after the crash after process() call {CRASH_AFTER} and a restart")


def test_crash_right_after_commit_is_exactly_once(kafka, impl_path, tmp_path):
    """A SIGKILL right after a transaction commits, then a restart: nothing that transaction covered is done twice."""
    p = make_pipeline(kafka, 20)
    wrapper, marker = crash_after_commit_wrapper(impl_path, tmp_path)
    did = (f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records and SIGKILLed it right after "
           "its first commit_transaction() returned, before any other line of your code ran; then started it again "
           "(unmodified, same arguments) and read the output with isolation.level=read_committed")
    first = ChildRun(wrapper, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, name="first")
    try:
        deadline, idle_since, seen = time.monotonic() + 30, time.monotonic(), 0
        while first.proc.poll() is None and time.monotonic() < deadline:
            count = len(first.records())
            if count != seen:
                seen, idle_since = count, time.monotonic()
            elif count >= len(p.inputs) and time.monotonic() - idle_since > 3:
                break  # everything processed and nothing committed: it never will
            time.sleep(0.1)
        code = first.proc.poll()
        if code is None:
            explain(did=f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records",
                    saw=f"it called process() {len(first.records())} times but never completed a "
                    "commit_transaction()",
                    expected="each batch of at most batch_size records committed in its own transaction",
                    nudge="a transaction only ends (and becomes visible) with commit_transaction().")
        if code != -9 or not marker.exists():
            explain(did=f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records",
                    saw=f"it stopped (exit code {code}) after {len(first.records())} process() calls, without "
                    f"completing a commit_transaction(): {_error_text(first.error())}",
                    expected="batches of records processed and committed in transactions")
    finally:
        first.close()

    second = ChildRun(impl_path, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, name="second")
    try:
        _finish(second, CatchUp(p), "restarted", did)
    finally:
        second.close()
    held = wait_transactions_closed(kafka, p.output_topic, timeout=5)
    if held:
        explain(did=did, saw=f"5 s after the restarted instance returned, output partitions {held} still had an open "
                "transaction", expected="every transaction committed or aborted by the time run_pipeline returns")
    records = kafka.read_all(p.output_topic, isolation="read_committed")
    _check_exactly_once(p, records, did, "after a crash right after the first transaction committed, and a restart")


def test_aborted_batch_is_invisible(kafka, impl):
    """A batch whose process() raises is aborted: read_committed never sees it, and a rerun redoes it exactly once."""
    p = make_pipeline(kafka, 20)
    uncommitted = OutputWatcher(kafka, p.output_topic, "read_uncommitted")
    calls: list[str] = []
    state = {"doomed": None, "doomed_sent": False}
    deadline = time.monotonic() + 40 + FENCE_WAIT_S

    def process(msg):
        calls.append(msg.value().decode())
        if len(calls) == FAIL_AT:
            state["doomed"] = expected_output(calls[-1])
            # Wait until this record's output really is on the broker (read_uncommitted sees it), so
            # "invisible to read_committed" below means aborted, not merely unsent.
            state["doomed_sent"] = uncommitted.wait_for_value(state["doomed"], 15)
            raise PoisonRecord(f"cannot process {calls[-1]!r}")

    def should_stop():
        return len(calls) >= len(p.inputs) or time.monotonic() > deadline

    did = (f"called {p.call(BATCH)} on {len(p.inputs)} input records, with a process() that raises "
           f"PoisonRecord on its {FAIL_AT}th call")
    raised = None
    try:
        impl.run_pipeline(**p.kwargs(BATCH), process=process, should_stop=should_stop)
    except Exception as exc:
        raised = exc
    raised_text = _error_text(raised)
    _forget(raised)
    if len(calls) < FAIL_AT:
        explain(did=did, saw=f"process() was called only {len(calls)} times ({raised_text})",
                expected="process(msg) called once per input record, after producing that record's output")
    if not isinstance(raised, PoisonRecord):
        explain(did=did, saw=f"run_pipeline ended with {raised_text} "
                f"(process() was called {len(calls)} times)",
                expected="the PoisonRecord raised by process() to propagate out of run_pipeline, once the batch "
                "has been dealt with",
                nudge="a failed batch must not be committed, skipped or retried here; undo it and let the "
                "caller see the error.")
    if not state["doomed_sent"]:
        explain(did=did, saw=f"even a read_uncommitted reader never saw {state['doomed']!r}, the output of the "
                "record process() failed on",
                expected="each record's output to be produced before process() is called for it",
                nudge="the check needs the failing batch's output on the broker to prove it gets aborted.")
    held = wait_transactions_closed(kafka, p.output_topic, timeout=5)
    if held:
        explain(did=did, saw=f"5 s after run_pipeline raised, output partitions {held} still had an open "
                "transaction: every read_committed reader of the output is stuck behind it until the broker "
                "times it out",
                expected="the failed transaction to be ended before run_pipeline re-raises",
                nudge="a transaction is not undone by an exception in your code, nor when your producer object "
                "goes away. Who ends it, and how?")
    committed_values = [r.value_text for r in kafka.read_all(p.output_topic, isolation="read_committed")]
    if state["doomed"] in committed_values:
        explain(did=did + ", then read the output with isolation.level=read_committed",
                saw=f"{state['doomed']!r}, produced in the batch that failed, is visible to read_committed "
                f"readers ({len(committed_values)} records visible)",
                expected="nothing from the failed batch visible to read_committed readers "
                "(a read_uncommitted reader did see it: it was written, then must be aborted)",
                nudge="is the output written inside a transaction, and what happens to that transaction when "
                "the batch fails?")

    # The rerun: the aborted batch must be read and done again, exactly once, with nothing lost.
    catch_up = CatchUp(p)
    rerun_deadline = time.monotonic() + 40
    rerun_did = did + "; then called run_pipeline again with the same arguments and a process() that never raises"
    try:
        impl.run_pipeline(**p.kwargs(BATCH), process=lambda msg: None,
                          should_stop=lambda: catch_up.done() or time.monotonic() > rerun_deadline)
    except Exception as exc:
        text = _error_text(exc)
        _forget(exc)
        explain(did=rerun_did, saw=f"the rerun raised {text}", expected="the rerun to finish the input and return")
    records = kafka.read_all(p.output_topic, isolation="read_committed")
    _check_exactly_once(p, records, rerun_did + ", and read the output with read_committed",
                        f"after an aborted batch (process() call {FAIL_AT}) and a rerun")


def test_second_instance_fences_the_first(kafka, impl, impl_path, tmp_path):
    """A second instance with the same transactional.id fences the first, which stops with the fencing error."""
    p = make_pipeline(kafka, 20)
    uncommitted = OutputWatcher(kafka, p.output_topic, "read_uncommitted")
    calls: list[str] = []
    state = {"second": None, "sent": False, "open": [], "held": None, "fenced_at": None}
    deadline = time.monotonic() + 40 + FENCE_WAIT_S

    def process(msg):
        calls.append(msg.value().decode())
        if len(calls) == FENCE_AT:
            state["sent"] = uncommitted.wait_for_value(expected_output(calls[-1]), 15)
            state["open"] = open_transaction_partitions(kafka, p.output_topic)
            # The new instance starts while this one is in the middle of a transaction.
            state["second"] = ChildRun(impl_path, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, name="second")
            # Its init_transactions() aborts our open transaction: the output's open transaction closes.
            # Generous: the second instance is a fresh Python process (imports, then init_transactions())
            # and a loaded machine can take seconds to start it; correct code ends the wait at once.
            state["held"] = wait_transactions_closed(kafka, p.output_topic, timeout=FENCE_WAIT_S)
            state["fenced_at"] = time.monotonic()

    def should_stop():
        fenced_at = state["fenced_at"]
        return (fenced_at is not None and time.monotonic() > fenced_at + 5) or time.monotonic() > deadline

    did = (f"called {p.call(BATCH)} (the first instance) on {len(p.inputs)} input records; during its "
           f"{FENCE_AT}th process() call, mid-transaction, started a second instance with the same arguments "
           "(same transactional.id) in another process")
    raised = None
    try:
        impl.run_pipeline(**p.kwargs(BATCH), process=process, should_stop=should_stop)
    except Exception as exc:
        raised = exc
    raised_text = _error_text(raised)
    raised_error = raised.args[0] if isinstance(raised, KafkaException) and raised.args else None
    if not isinstance(raised_error, KafkaError):
        raised_error = None
    _forget(raised)
    second: ChildRun | None = state["second"]
    try:
        if second is None:
            explain(did=did, saw=f"the first instance ended ({raised_text}) after only {len(calls)} process() calls",
                    expected=f"process(msg) called once per input record (at least {FENCE_AT} times)")
        if not state["sent"]:
            explain(did=did, saw="even a read_uncommitted reader never saw the output of the record being "
                    "processed", expected="each record's output to be produced before process() is called for it")
        if not state["open"]:
            explain(did=did, saw="in the middle of a batch, the output of the record being processed was already "
                    "visible to read_committed readers: no transaction was open on the output topic",
                    expected="each batch's output written inside a transaction, invisible until it commits",
                    nudge="a producer takes part in transactions only when it has a transactional.id.")
        if state["held"]:
            explain(did=did, saw=f"{FENCE_WAIT_S:.0f} s after the second instance started, the first instance's "
                    f"transaction was still open on output partitions {state['held']} (second instance: "
                    f"{_error_text(second.error()) if second.proc.poll() is not None else 'still running'})",
                    expected="the second instance to take over the transactional.id as it starts, which aborts "
                    "the first instance's open transaction at once",
                    nudge="which call registers a transactional.id with the broker, and when must it happen?")
        if raised is None:
            explain(did=did, saw=f"the first instance kept running after it had been fenced, and returned normally "
                    f"when should_stop() turned True ({len(calls)} process() calls)",
                    expected="the first instance to stop by raising the fencing error (a fatal KafkaException) "
                    "from its next transactional call",
                    nudge="once another instance owns the transactional.id this producer can never commit "
                    "again. What should a zombie do?")
        if raised_error is None or not (raised_error.fatal() or raised_error.code() in FENCING_CODES):
            explain(did=did, saw=f"the first instance raised {raised_text}",
                    expected="a KafkaException whose KafkaError is fatal (e.g. _FENCED), raised as is",
                    nudge="after a fatal error abort_transaction() cannot work either: calling it replaces the "
                    "real cause with a confusing error. Check err.fatal() before trying to abort.")
        # The second instance now owns the partitions: it must finish the work without duplicates.
        catch_up = CatchUp(p)
        _finish(second, catch_up, "second", did)
    finally:
        if second is not None:
            second.close()
    records = kafka.read_all(p.output_topic, isolation="read_committed")
    _check_exactly_once(p, records, did + "; let the second instance finish, then read the output with "
                        "read_committed", "after the first instance was fenced mid-transaction")
