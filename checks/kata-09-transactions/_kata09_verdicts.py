"""kata-09's verdicts: how the checks finish a child pipeline and judge what the broker shows
(the output as a read_committed reader sees it, the group's committed offsets, open transactions)."""

from __future__ import annotations

import gc
import time

from _kata09_child import Observed
from _kata09_support import (
    CatchUp,
    OutputWatcher,
    describe_offsets,
    end_offsets,
    expected_output,
    group_offsets,
    next_offsets,
    offsets_nudge,
    short,
    tally,
    transaction_timeout_ms,
    wait_group_offsets,
)
from _kata09_timeline import parts, steps
from confluent_kafka import KafkaException

from grader.kit import ChildRun, explain

BATCH = 5
CRASH_AFTER = 12  # the third batch of five: two transactions committed, one open
FAIL_AT = 8  # the second batch: one committed transaction before it
FENCE_AT = 8
FENCE_WAIT_S = 20.0  # how long the second instance may take to start and fence the first
OFFSETS_WATCH_S = 1.0  # how long the held instance's offsets must stay put (auto-commit runs every 0.1 s)
MAX_LOOKS_PER_S = 200  # consume() waits for records; a loop that spins calls should_stop() thousands of times
STOP_GAP_S = 2.5  # an idle pipeline checks should_stop() at least every second
MAX_TRANSACTION_TIMEOUT_MS = 10000
INIT_GRACE_S = 1.0  # init_transactions() returns once the predecessor's transaction is aborted: allow a moment


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


def _finish(run: ChildRun, catch_up: CatchUp, label: str, did: str, obs: Observed | None = None,
            timeout: float = 40) -> bool:
    """Let an instance work until it has caught up, then ask it to stop and wait for it."""
    caught_up = catch_up.wait(timeout)
    steps.did(f"{'once it caught up' if caught_up else f'{timeout:.0f} s later, not caught up'}, ask the {label} "
              "instance to stop")
    run.stop()
    code = run.wait(20)
    steps.did(f"the {label} instance " + ("was still running 20 s later" if code is None else "returned" if code == 0
                                          else f"failed: {_error_text(run.error())}"), "" if code == 0 else "missing")
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
    busiest = obs.busiest_second() if obs is not None else 0
    if busiest > MAX_LOOKS_PER_S:
        explain(did=f"{did}, and counted the {label} instance's should_stop() calls",
                saw=f"{busiest} should_stop() calls within one second",
                expected=f"a loop that waits for records (in consume()) between looks: at most {MAX_LOOKS_PER_S} a "
                "second", nudge="what does consume() do with its timeout when no records are waiting?",
                seen_in="the check's callbacks")
    gap = obs.stop_gap() if obs is not None else None
    if caught_up and gap is not None and gap > STOP_GAP_S:
        explain(did=f"{did}, waited until it had caught up (idle: no new input), then made should_stop() return True",
                saw=f"the {label} instance went {gap:.1f} s without calling should_stop() while idle",
                expected=f"should_stop() checked at least every second while idle (allowed: {STOP_GAP_S:.1f} s)",
                nudge="how long can one consume() call wait when no records arrive?", seen_in="the check's callbacks")
    # Not caught up by the deadline is not a failure by itself: the read-back that follows
    # says exactly what is missing or duplicated.
    return caught_up


def _check_exactly_once(p, records, did: str, story: str) -> None:
    values = [r.value_text for r in records]
    missing, dupes, unexpected = tally(p, values)
    steps.saw(f"read_committed output: {len(values)} records; of {len(p.inputs)} inputs {len(missing)} missing, "
              f"{len(dupes)} more than once; {len(unexpected)} unexpected",
              "missing" if missing else "duplicate" if dupes else "extra" if unexpected else "")
    wrong_keys = [(r.value_text, r.key_text) for r in records
                  if r.value_text in p.expected and r.key_text != r.value_text.split(":")[0].lower()]
    if wrong_keys:
        value, key = wrong_keys[0]
        explain(did=did, saw=f"output {value!r} has key {key!r} ({len(wrong_keys)} records with a key that is not "
                "their input's)", expected=f"the input record's key, unchanged: {value.split(':')[0].lower()!r}",
                nudge="the output record keeps the input's key (so it lands in the same partition of the output "
                "as its other records)")
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


def _expect_offsets_of_committed_output(kafka, p, processed: list[dict]) -> None:
    """While a batch is held inside process(), the group's committed offsets must be exactly the next
    offsets after the records whose output is committed: no more (nothing of the open batch), no less."""
    watcher = OutputWatcher(kafka, p.output_topic, "read_committed")

    def want() -> dict[int, int]:
        watcher.poll(0.05)
        return next_offsets([r for r in processed if watcher.seen[expected_output(r["value"])]])

    did = (f"ran {p.call(BATCH)} in a child process and held its {CRASH_AFTER}th process() call (mid-transaction: "
           f"{len(processed)} records processed before it), then asked the broker for the group's committed offsets")
    seen = wait_group_offsets(kafka, p, want, timeout=5)
    # Then watch a moment longer: an auto-commit (every 100 ms with the checks' consumer_config) would move
    # the offsets past the committed output while the transaction is still open.
    until = time.monotonic() + OFFSETS_WATCH_S
    while seen == want() and time.monotonic() < until:
        time.sleep(0.1)
        seen = group_offsets(kafka, p)
    expected = want()
    steps.offsets("group offsets meanwhile", seen, expected)
    if seen != expected:
        explain(did=did, saw=f"committed offsets on the input: {describe_offsets(seen)}",
                expected=f"{describe_offsets(expected)}: per partition, the offset after the last record whose "
                "output is committed (visible to read_committed readers); nothing of the open transaction",
                nudge=offsets_nudge(seen, expected))


def _wait_dead_transaction_ended(kafka, p, dead_high: dict, dead_stable: dict) -> list[int]:
    """Partitions where the last stable offset is still below where the dead transaction's records end."""
    deadline = time.monotonic() + INIT_GRACE_S
    while True:
        stable = end_offsets(kafka, p.output_topic, True)
        still = sorted(part for part, high in dead_high.items() if dead_stable[part] < high and stable[part] < high)
        if not still or time.monotonic() >= deadline:
            steps.saw("after the restart's init_transactions() returned: " + (
                f"the dead instance's transaction still open on output {parts(still)}" if still
                else "the dead instance's transaction is over"), "extra" if still else "")
            return still
        time.sleep(0.05)


def _expect_short_transaction_timeout(kafka, p, batch: int, since_ms: int) -> None:
    """The coordinator's record of the instance's transactional.id names a short transaction.timeout.ms."""
    timeout_ms = transaction_timeout_ms(kafka, p.transactional_id, since_ms=since_ms)
    steps.timeout(timeout_ms, MAX_TRANSACTION_TIMEOUT_MS)
    if timeout_ms is None:
        explain(did=f"ran {p.call(batch)} in a child process, then read the transaction coordinator's record of "
                f"transactional.id {p.transactional_id!r}",
                saw="no record of that transactional.id since the run began, although the instance was inside "
                "a batch", expected="the record init_transactions() leaves for the transactional_id passed in",
                nudge="the producer's transactional.id must be the transactional_id argument, not a name of your "
                "own (or, on a shared cluster, the grading principal may not read __transaction_state).")
    if timeout_ms > MAX_TRANSACTION_TIMEOUT_MS:
        explain(did=f"ran {p.call(batch)} in a child process, then read the transaction coordinator's record of "
                "its transactional.id", saw=f"transaction.timeout.ms = {timeout_ms}",
                expected=f"at most {MAX_TRANSACTION_TIMEOUT_MS} ms: an abandoned transaction holds back every "
                "read_committed reader of the output until the broker times it out",
                nudge="librdkafka's default is a whole minute. Which producer setting shortens it?")
