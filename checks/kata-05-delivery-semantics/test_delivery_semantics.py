"""Hidden checks for kata-05 (delivery semantics). Never shown to learners.

Each check runs one of the learner's two consumers in a child process on a 3-partition topic of
numbered records, kills it (SIGKILL) right after a process() call or in the middle of one, starts
it again, and compares what process() received in both runs with the group's committed offsets.
The two crash points tell the semantics apart:

                               crash right after process()   crash in the middle of process()
    at-most-once (commit first)    nothing lost, no repeat        the record in hand is lost
    at-least-once (commit after)   the record is repeated         the record is processed again
"""

from grader.kit import explain
from grader.kit.commit import (
    HOLD_S,
    PARTITIONS,
    Committed,
    all_records,
    duplicates,
    finish,
    make_topic,
    processed,
    show,
    show_records,
    start,
    start_holding,
    total,
    wait_crash,
    wait_hold,
    watch_while_held,
)

AT_MOST_ONCE = "consume_at_most_once"
AT_LEAST_ONCE = "consume_at_least_once"
CRASH_AFTER = 10
HOLD_AT = 11


def _check_final_commit(watcher, ends, did, name):
    committed = watcher.read()
    if committed != ends:
        explain(did=did, saw=f"committed offsets {show(committed)}; the partitions end at {show(ends)}",
                expected=f"{name}: once every record was handed to process(), the committed offset of every "
                "partition equal to its end offset",
                nudge="a committed offset names the next record to read. Is every record committed, and did the "
                "last commit reach the broker before the consumer closed?")


def _crash_right_after(kafka, impl_path, tmp_path, function):
    """Run `function`, SIGKILL it right after its CRASH_AFTER-th process() call, restart it and let it
    catch up. Returns (watcher, ends, records of run 1, committed offsets after the crash, records of
    run 2, the description of what was done)."""
    topic, ends = make_topic(kafka)
    group = kafka.unique("group")
    watcher = Committed(kafka, group, topic)
    did = (f"ran {function}() in a child process on {total(ends)} records in {PARTITIONS} partitions, SIGKILLed it "
           f"right after its {CRASH_AFTER}th process() call returned (before any more of your code ran), then "
           "started it again with the same group id")
    first = start(impl_path, tmp_path, kafka, topic, group, "first", function, crash_after=CRASH_AFTER)
    try:
        wait_crash(first, CRASH_AFTER, did)
        before = processed(first, did)
    finally:
        first.close()
    after_crash = watcher.read()
    second = start(impl_path, tmp_path, kafka, topic, group, "second", function)
    try:
        finish(second, all_records(ends), before, did)
        again = processed(second, did)
    finally:
        second.close()
    return watcher, ends, before, after_crash, again, did


def _crash_mid_processing(kafka, impl_path, tmp_path, function, wait_for_commit: bool):
    """Run `function` with a process() that does not return from its HOLD_AT-th call, watch the committed
    offsets for up to HOLD_S seconds, SIGKILL it mid-processing, restart it and let it catch up.
    Returns (watcher, ends, held record, records of run 1, committed at the kill, records of run 2, did)."""
    topic, ends = make_topic(kafka)
    group = kafka.unique("group")
    watcher = Committed(kafka, group, topic)
    did = (f"ran {function}() in a child process on {total(ends)} records in {PARTITIONS} partitions; its "
           f"{HOLD_AT}th process() call did not return: it kept the record 'in processing' for up to {HOLD_S:.1f}s "
           "while the check watched the group's committed offsets, then the consumer was SIGKILLed mid-processing "
           "and started again with the same group id")
    first, hold_file = start_holding(impl_path, tmp_path, kafka, topic, group, "first", function, HOLD_AT)
    try:
        held = wait_hold(first, hold_file, HOLD_AT, did)
        # At-most-once must commit the record before processing it: the kill waits for that commit.
        # At-least-once must not: the whole hold gives every background commit its chance.
        at_kill = watch_while_held(watcher, held[0], held[1], HOLD_S)
        first.kill()
        before = processed(first, did)
    finally:
        first.close()
    second = start(impl_path, tmp_path, kafka, topic, group, "second", function)
    try:
        expected = all_records(ends) - ({held} if wait_for_commit else set())
        finish(second, expected, before, did)
        again = processed(second, did)
    finally:
        second.close()
    return watcher, ends, held, before, at_kill, again, did


def test_at_most_once_never_repeats(kafka, impl_path, tmp_path):
    """At-most-once, killed right after processing a record: after a restart no record is processed twice."""
    watcher, ends, before, after_crash, again, did = _crash_right_after(kafka, impl_path, tmp_path, AT_MOST_ONCE)
    repeated = duplicates(before + again)
    if repeated:
        explain(did=did, saw=f"process() received {show_records(repeated)} twice (committed offsets right after the "
                f"kill: {show(after_crash)})",
                expected="at-most-once: no record handed to process() a second time, whatever the moment of the crash",
                nudge="a restart resumes at the committed offset. For a record never to come back, what must "
                "already be on the broker when process() is called?")
    missing = all_records(ends) - set(before) - set(again)
    if missing:
        explain(did=did, saw=f"neither run processed {show_records(missing)} (committed offsets right after the "
                f"kill: {show(after_crash)})",
                expected="nothing lost here: at-most-once may only lose a record whose processing was cut short, "
                "and this crash came after process() had returned",
                nudge="commit the record in hand, not records you have not handed to process() yet.")
    _check_final_commit(watcher, ends, did + " until it caught up, and stopped it", AT_MOST_ONCE)


def test_at_most_once_drops_the_record_in_flight(kafka, impl_path, tmp_path):
    """At-most-once, killed mid-processing: the record in hand was already committed and never comes back."""
    watcher, ends, held, before, at_kill, again, did = _crash_mid_processing(kafka, impl_path, tmp_path,
                                                                             AT_MOST_ONCE, wait_for_commit=True)
    partition, offset = held
    if held in again:
        explain(did=did, saw=f"the record being processed when the consumer died (partition {partition}, offset "
                f"{offset}) was handed to process() again after the restart; while it was in processing the "
                f"committed offsets were {show(at_kill)}",
                expected=f"at-most-once: partition {partition} committed past offset {offset} before process() was "
                "called for it, so a restart never sees it again",
                nudge="at-most-once gives up the record in hand to make sure nothing is ever done twice. Which has "
                "to happen first: the commit or the processing?")
    repeated = duplicates(before + again)
    if repeated:
        explain(did=did, saw=f"process() received {show_records(repeated)} twice",
                expected="at-most-once: no record handed to process() a second time")
    missing = all_records(ends) - {held} - set(before) - set(again)
    if missing:
        explain(did=did, saw=f"apart from the record in processing at the kill (p{partition}@{offset}), neither run "
                f"processed {show_records(missing)}",
                expected="only the record in hand lost: every other record processed once",
                nudge="commit the record in hand, not records you have not handed to process() yet.")
    _check_final_commit(watcher, ends, did + " until it caught up, and stopped it", AT_MOST_ONCE)


def test_at_least_once_repeats_the_crashed_record(kafka, impl_path, tmp_path):
    """At-least-once, killed right after processing a record: the restart processes it again and loses nothing."""
    watcher, ends, before, after_crash, again, did = _crash_right_after(kafka, impl_path, tmp_path, AT_LEAST_ONCE)
    missing = all_records(ends) - set(before) - set(again)
    if missing:
        explain(did=did, saw=f"neither run processed {show_records(missing)} (committed offsets right after the "
                f"kill: {show(after_crash)})", expected="at-least-once: every record processed at least once",
                nudge="what did the group have committed when the consumer died, and which of those records had "
                "really been processed?")
    crashed = before[-1]
    if crashed not in again:
        explain(did=did, saw=f"the record whose process() call was followed by the kill (p{crashed[0]}@{crashed[1]}) "
                f"was not processed again: it was already committed (committed offsets right after the kill: "
                f"{show(after_crash)})",
                expected="at-least-once: that record processed again after the restart, because the kill came "
                "before any code after process() could commit it",
                nudge="if the commit happens before process() returns, what becomes of the record when the crash "
                "comes in the middle of process() instead?")
    _check_final_commit(watcher, ends, did + " until it caught up, and stopped it", AT_LEAST_ONCE)


def test_at_least_once_never_loses_the_record_in_flight(kafka, impl_path, tmp_path):
    """At-least-once, killed mid-processing: the record in hand is not committed, and the restart processes it."""
    watcher, ends, held, before, at_kill, again, did = _crash_mid_processing(kafka, impl_path, tmp_path,
                                                                             AT_LEAST_ONCE, wait_for_commit=False)
    partition, offset = held
    if held not in again:
        explain(did=did, saw=f"the record being processed when the consumer died (partition {partition}, offset "
                f"{offset}) never reached process() again: it is lost. While it was in processing the group's "
                f"committed offsets became {show(at_kill)}",
                expected=f"at-least-once: partition {partition} committed no further than {offset} until process() "
                "returned for it, so the restart processes it",
                nudge="what does the broker hear about a record before your process() call returns? Think of "
                "every way an offset can get committed, including ones librdkafka does on its own.")
    missing = all_records(ends) - set(before) - set(again)
    if missing:
        explain(did=did, saw=f"neither run processed {show_records(missing)}",
                expected="at-least-once: every record processed at least once")
    _check_final_commit(watcher, ends, did + " until it caught up, and stopped it", AT_LEAST_ONCE)
