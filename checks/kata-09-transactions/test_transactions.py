"""Hidden checks for kata-09 (transactions). Never shown to learners.

Each check causes the failure it is about for real: a SIGKILL in the middle of a transaction,
a process() that raises mid-batch, a second instance that takes over the transactional.id.
What counts is what a read_committed reader of the output topic sees afterwards.
"""

from __future__ import annotations

import time

from _kata09_child import observed
from _kata09_support import (
    FENCING_CODES,
    CatchUp,
    OutputWatcher,
    PoisonRecord,
    describe_offsets,
    end_offsets,
    expected_output,
    group_offsets,
    make_pipeline,
    next_offsets,
    offsets_nudge,
    open_transaction_partitions,
    short,
    wait_group_offsets,
    wait_transactions_closed,
)
from _kata09_timeline import parts, steps, with_timeline
from _kata09_verdicts import (
    BATCH,
    CRASH_AFTER,
    FAIL_AT,
    FENCE_AT,
    FENCE_WAIT_S,
    INIT_GRACE_S,
    _check_exactly_once,
    _error_text,
    _expect_offsets_of_committed_output,
    _expect_short_transaction_timeout,
    _finish,
    _forget,
    _wait_dead_transaction_ended,
)
from confluent_kafka import KafkaError, KafkaException

from grader.kit import ChildRun, explain


@with_timeline("What the check did, and what the broker recorded")
def test_crash_mid_transaction_is_exactly_once(kafka, impl_path, tmp_path):
    """A SIGKILL in the middle of a transaction, then a restart: every input appears exactly once in the output."""
    started_ms = int(time.time() * 1000)
    p = make_pipeline(kafka, 30, ghosts=3)
    did = (f"produced {len(p.inputs)} records to the input topic (plus an aborted transaction), ran "
           f"{p.call(BATCH)} in a child process and SIGKILLed it during its {CRASH_AFTER}th process() call "
           "(mid-transaction), then started it again with the same arguments and read the output with "
           "isolation.level=read_committed")
    # The 12th process() call never returns: while the third transaction is open, the group's committed
    # offsets must be exactly those of the committed transactions; then the SIGKILL.
    first = ChildRun(impl_path, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, hold_at=CRASH_AFTER,
                     name="first")
    steps.did(f"write {len(p.inputs)} inputs + an aborted transaction; start run_pipeline(batch_size={BATCH}) in a "
              f"child process; hold its process() call {CRASH_AFTER}")
    try:
        deadline = time.monotonic() + 45
        while first.proc.poll() is None and not first.hold_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        code = first.proc.poll()
        if code is None and not first.hold_file.exists():
            explain(did=f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records",
                    saw=f"after 45 s it had called process() only {len(first.records())} times",
                    expected=f"process(msg) called once per input record (at least {CRASH_AFTER} by then)",
                    nudge="subscribe to input_topic, consume batches and call process(msg) for every record.")
        if code is not None:
            explain(did=f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records",
                    saw=f"it stopped (exit code {code}) after {len(first.records())} process() calls: "
                    f"{_error_text(first.error())}",
                    expected=f"process(msg) called for each record, so the check could crash it during the "
                    f"{CRASH_AFTER}th")
        steps.did(f"the first instance is inside process() call {CRASH_AFTER}: mid-transaction")
        _expect_offsets_of_committed_output(kafka, p, first.records())
        _expect_short_transaction_timeout(kafka, p, BATCH, started_ms)
    finally:
        first.close()

    # The dead instance's transaction is still open on the output: the restart's init_transactions() ends it.
    steps.did("SIGKILL the first instance, mid-transaction", "crash")
    dead_high, dead_stable = end_offsets(kafka, p.output_topic, False), end_offsets(kafka, p.output_topic, True)
    steps.output(kafka, p.output_topic, "after the kill")
    obs = observed(impl_path, tmp_path, "second")
    second = ChildRun(obs.wrapper, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, name="second")
    steps.did("start it again: same arguments, same transactional.id")
    try:
        catch_up = CatchUp(p)
        if obs.wait_init(lambda: second.proc.poll() is None, 30):
            still = _wait_dead_transaction_ended(kafka, p, dead_high, dead_stable)
            if still:
                explain(did=did.split(", then started")[0] + ", then started it again with the same arguments",
                        saw=f"{INIT_GRACE_S:.0f} s after the restarted instance's init_transactions() returned, the "
                        f"dead instance's transaction was still open on output partitions {still}",
                        expected="the restart takes over the transactional.id, which aborts the dead instance's "
                        "transaction at once (read_committed readers are stuck behind it until then)",
                        nudge="how does the broker know the restarted pipeline is the same one as the dead one?")
        _finish(second, catch_up, "restarted", did, obs)
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


@with_timeline("What the check did, and what the broker recorded")
def test_crash_right_after_commit_is_exactly_once(kafka, impl_path, tmp_path):
    """A SIGKILL right after a transaction commits, then a restart: nothing that transaction covered is done twice."""
    p = make_pipeline(kafka, 20)
    cc = observed(impl_path, tmp_path, "first", crash_at_first_commit=True)
    did = (f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records and SIGKILLed it right after "
           "its first commit_transaction() returned, before any other line of your code ran; then started it again "
           "(unmodified, same arguments) and read the output with isolation.level=read_committed")
    first = ChildRun(cc.wrapper, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, name="first")
    steps.did(f"write {len(p.inputs)} inputs; start run_pipeline(batch_size={BATCH}); pause its first "
              "commit_transaction()")
    try:
        deadline, idle_since, seen = time.monotonic() + 30, time.monotonic(), 0
        while first.proc.poll() is None and time.monotonic() < deadline and not cc.held.exists():
            count = len(first.records())
            if count != seen:
                seen, idle_since = count, time.monotonic()
            elif count >= len(p.inputs) and time.monotonic() - idle_since > 3:
                break  # everything processed and nothing committed: it never will
            time.sleep(0.05)
        if cc.held.exists():
            # The first commit_transaction() has just been called, and waits: nothing is committed yet,
            # so the group must not have moved either.
            early = group_offsets(kafka, p)
            steps.offsets(f"in commit_transaction(), {len(first.records())} processed: group offsets", early, {})
            if early:
                explain(did=f"ran {p.call(BATCH)} in a child process and paused it as its first "
                        "commit_transaction() began, then asked the broker for the group's committed offsets",
                        saw=f"committed offsets on the input: {describe_offsets(early)}, although no transaction "
                        "had committed yet", expected="no committed offsets until the first transaction commits",
                        nudge="a crash right now would lose this batch: its output is not committed, yet the group "
                        "says it is done. Offsets must commit with the output, in the transaction, never on their own.")
            cc.release.touch()
            steps.did("let that commit go; SIGKILL the instance the moment it returns", "crash")
            while first.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        code = first.proc.poll()
        if code is None:
            explain(did=f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records",
                    saw=f"it called process() {len(first.records())} times but never completed a "
                    "commit_transaction()",
                    expected="each batch of at most batch_size records committed in its own transaction",
                    nudge="a transaction only ends (and becomes visible) with commit_transaction().")
        if code != -9 or not cc.marker.exists():
            explain(did=f"ran {p.call(BATCH)} in a child process on {len(p.inputs)} input records",
                    saw=f"it stopped (exit code {code}) after {len(first.records())} process() calls, without "
                    f"completing a commit_transaction(): {_error_text(first.error())}",
                    expected="batches of records processed and committed in transactions")
        # Every record processed so far belongs to the transaction that just committed.
        batch = first.records()
    finally:
        first.close()
    want = next_offsets(batch)
    seen = wait_group_offsets(kafka, p, lambda: want, timeout=5)
    steps.offsets(f"after the kill (that transaction covered {len(batch)} records): group offsets", seen, want)
    if seen != want:
        explain(did=f"ran {p.call(BATCH)} in a child process, SIGKILLed it right after its first "
                "commit_transaction() returned, then asked the broker for the group's committed offsets",
                saw=f"committed offsets on the input: {describe_offsets(seen)} (that transaction covered "
                f"{len(batch)} records: {short([(r['partition'], r['offset']) for r in batch], 5)} as (partition, "
                "offset))", expected=f"{describe_offsets(want)}: per partition, the offset after the last record of "
                "the committed transaction", nudge=offsets_nudge(seen, want))

    obs = observed(impl_path, tmp_path, "second")
    second = ChildRun(obs.wrapper, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path, name="second")
    steps.did("start it again: same arguments, same transactional.id")
    try:
        _finish(second, CatchUp(p), "restarted", did, obs)
    finally:
        second.close()
    held = wait_transactions_closed(kafka, p.output_topic, timeout=5)
    if held:
        explain(did=did, saw=f"5 s after the restarted instance returned, output partitions {held} still had an open "
                "transaction", expected="every transaction committed or aborted by the time run_pipeline returns")
    records = kafka.read_all(p.output_topic, isolation="read_committed")
    _check_exactly_once(p, records, did, "after a crash right after the first transaction committed, and a restart")


@with_timeline("What the check did, and what the broker recorded")
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
        # Correct code never asks again once process() has raised: it aborts and re-raises.
        return state["doomed"] is not None or len(calls) >= len(p.inputs) or time.monotonic() > deadline

    did = (f"called {p.call(BATCH)} on {len(p.inputs)} input records, with a process() that raises "
           f"PoisonRecord on its {FAIL_AT}th call")
    raised = None
    steps.did(f"call run_pipeline(batch_size={BATCH}) on {len(p.inputs)} inputs; process() raises on call {FAIL_AT}")
    try:
        impl.run_pipeline(**p.kwargs(BATCH), process=process, should_stop=should_stop)
    except Exception as exc:
        raised = exc
    raised_text = _error_text(raised)
    _forget(raised)
    steps.yes_no("read_uncommitted saw the failing record's output", state["doomed_sent"], bad=False)
    steps.did(f"run_pipeline ended with {raised_text}", "" if isinstance(raised, PoisonRecord) else "missing")
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
    steps.saw(f"5 s later: transaction still open on output {parts(held)}" if held else "no transaction open on output",
              "extra" if held else "")
    if held:
        explain(did=did, saw=f"5 s after run_pipeline raised, output partitions {held} still had an open "
                "transaction: every read_committed reader of the output is stuck behind it until the broker "
                "times it out",
                expected="the failed transaction to be ended before run_pipeline re-raises",
                nudge="a transaction is not undone by an exception in your code, nor when your producer object "
                "goes away. Who ends it, and how?")
    committed_values = [r.value_text for r in kafka.read_all(p.output_topic, isolation="read_committed")]
    steps.yes_no("read_committed sees the failed batch's output", state["doomed"] in committed_values, bad=True)
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
    steps.did("call run_pipeline again, same arguments; process() never raises")
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


@with_timeline("What the check did, and what the broker recorded")
def test_second_instance_fences_the_first(kafka, impl, impl_path, tmp_path):
    """A second instance with the same transactional.id fences the first, which stops with the fencing error."""
    p = make_pipeline(kafka, 20)
    uncommitted = OutputWatcher(kafka, p.output_topic, "read_uncommitted")
    calls: list[str] = []
    state = {"second": None, "sent": False, "open": [], "held": None, "fenced_at": None, "inited_at": None}
    deadline = time.monotonic() + 40 + FENCE_WAIT_S
    obs = observed(impl_path, tmp_path, "second")

    def process(msg):
        calls.append(msg.value().decode())
        if len(calls) == FENCE_AT:
            state["sent"] = uncommitted.wait_for_value(expected_output(calls[-1]), 15)
            state["open"] = open_transaction_partitions(kafka, p.output_topic)
            steps.saw(f"in process() call {FENCE_AT}: transaction open on output {parts(state['open'])}",
                      "" if state["open"] else "missing")
            steps.did("start a second instance: same arguments, same transactional.id")
            # The new instance starts while this one is in the middle of a transaction.
            state["second"] = ChildRun(obs.wrapper, "run_pipeline", p.kwargs(BATCH), workdir=tmp_path,
                                       name="second")
            # Its init_transactions() aborts our open transaction: the output's open transaction closes.
            # Generous: the second instance is a fresh Python process (imports, then init_transactions())
            # and a loaded machine can take seconds to start it; correct code ends the wait at once. Once
            # its init_transactions() has returned, our transaction must be over (or it never will be).
            until = time.monotonic() + FENCE_WAIT_S
            while True:
                state["held"] = wait_transactions_closed(kafka, p.output_topic, timeout=0.2)
                if not state["held"] or time.monotonic() >= until:
                    break
                if state["inited_at"] is None and obs.init_done():
                    state["inited_at"] = time.monotonic()
                if state["inited_at"] is not None and time.monotonic() > state["inited_at"] + INIT_GRACE_S:
                    break
            state["fenced_at"] = time.monotonic()
            steps.fenced(state["held"], state["inited_at"] is not None)

    def should_stop():
        fenced_at = state["fenced_at"]
        return (fenced_at is not None and time.monotonic() > fenced_at + 5) or time.monotonic() > deadline

    first_kwargs = {k: v for k, v in p.kwargs(BATCH).items() if k != "batch_size"}  # the default batch size
    steps.did(f"write {len(p.inputs)} inputs; call run_pipeline (the first instance, default batch_size)")
    did = (f"called {p.call(BATCH).replace(f', batch_size={BATCH}', '')} (the first instance) on {len(p.inputs)} "
           f"input records; during its "
           f"{FENCE_AT}th process() call, mid-transaction, started a second instance with the same arguments "
           "(same transactional.id) in another process")
    raised = None
    try:
        impl.run_pipeline(**first_kwargs, process=process, should_stop=should_stop)
    except Exception as exc:
        raised = exc
    raised_text = _error_text(raised)
    steps.did(f"the first instance ended with {raised_text}", "" if raised else "missing")
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
        if state["held"] and state["inited_at"] is not None:
            explain(did=did, saw=f"{INIT_GRACE_S:.0f} s after the second instance's init_transactions() returned, the "
                    f"first instance's transaction was still open on output partitions {state['held']}",
                    expected="the second instance to take over the transactional.id as it starts, which aborts "
                    "the first instance's open transaction at once",
                    nudge="which producer setting tells the broker that two processes are the same pipeline "
                    "instance? Is it the same in both?")
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
        _finish(second, catch_up, "second", did, obs)
    finally:
        if second is not None:
            second.close()
    records = kafka.read_all(p.output_topic, isolation="read_committed")
    _check_exactly_once(p, records, did + "; let the second instance finish, then read the output with "
                        "read_committed", "after the first instance was fenced mid-transaction")
