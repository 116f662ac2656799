"""Hidden checks for kata-05 (delivery semantics). Never shown to learners.

Each check runs one of the learner's two consumers in child processes on a topic of numbered records
(several partitions, some empty, some already committed for the group), kills it (SIGKILL) right after
a process() call or in the middle of one, starts it again, and compares what process() received in
every run with the group's committed offsets, partition by partition. The two crash points tell the
semantics apart:

                               crash right after process()   crash in the middle of process()
    at-most-once (commit first)    nothing lost, no repeat        the record in hand is lost
    at-least-once (commit after)   the record is repeated         the record is processed again

Both commit every record synchronously, so at every crash point the committed offsets are exact:
at-most-once has committed every record handed to process() (offset + 1), at-least-once every record
whose process() returned.
"""

import pytest

from grader.kit import explain, pictures
from grader.kit.commit import (
    HOLD_S,
    STOP_LIMIT_S,
    committed_while_busy,
    duplicates,
    fence,
    finish,
    out_of_order,
    processed,
    start,
    stop_in_time,
    wait_crash,
    wait_hold,
    wait_records,
    watch_while_held,
    workdir,
)
from grader.kit.commitoffsets import (
    Committed,
    commit_picture,
    differ,
    direction,
    expected_commits,
    make_topic,
    precommit,
    records_between,
    show,
    show_records,
    total,
)

AT_MOST_ONCE = "consume_at_most_once"
AT_LEAST_ONCE = "consume_at_least_once"
CRASH_AFTER = 10
HOLD_AT = 11

NUDGE = {
    AT_MOST_ONCE: "at-most-once: each record is committed, on the broker, before process() is called for it.",
    AT_LEAST_ONCE: "at-least-once: each record is committed once process() has returned for it, before the next "
    "record is taken.",
}


@pytest.fixture
def wd(tmp_path):
    with workdir(tmp_path) as path:
        yield path


def _layout(kafka, counts, pre):
    topic, ends = make_topic(kafka, counts)
    group = kafka.unique("group")
    if pre:
        precommit(kafka, group, topic, pre)
    return topic, ends, group, Committed(kafka, group, topic, len(counts)), {p: pre.get(p) for p in ends}


def _describe(ends, pre) -> str:
    parts = ", ".join(f"p{p}: {n} records" + (f", committed at {pre[p]}" if p in pre else "") for p, n in ends.items())
    return f"a {len(ends)}-partition topic ({parts})"


def _check_commits(watcher, want, did, when, processed_text, function, layout=None):
    """layout: (ends, start offsets, records processed, crash record) for the picture of a failure."""
    got = watcher.read()
    wrong = differ(got, want)
    if wrong:
        if layout:
            pictures.attach(commit_picture(f"Committed offsets {when}", *layout, got=got, want=want))
        explain(did=did, saw=f"{when}, committed offsets {show(got)} ({processed_text}); partitions {wrong} differ",
                expected=f"{function}: committed offsets {show(want)}", nudge=direction(got, want) + NUDGE[function])
    return got


def _check_run(records, start_at, ends, did, label):
    def picture(what):
        pictures.attach(commit_picture(f"What process() received in {label}: {what}", ends, start_at, records))
    if duplicates(records):
        picture("a digit marks a record received more than once")
        explain(did=did, saw=f"{label}: process() received {show_records(duplicates(records))} more than once",
                expected="each record handed to process() once per run", seen_in="your process() calls")
    if out_of_order(records):
        picture("records out of offset order")
        explain(did=did, saw=f"{label}: process() received {show_records(out_of_order(records))} after a later "
                "offset of the same partition", expected="each partition's records processed in offset order",
                seen_in="your process() calls")
    extra = set(records) - records_between(start_at, ends)
    if extra:
        picture("records before the committed offsets (grey) were received")
        explain(did=did, saw=f"{label}: process() received {show_records(extra)}, which the group had already "
                f"committed (committed offsets: {show(start_at)})",
                expected="a consumer of the group starts each partition at its committed offset",
                nudge="does your code move the position somewhere other than where the group left off?",
                seen_in="your process() calls")


def _crash_right_after(kafka, impl_path, wd, function, counts, pre):
    """Run `function`, SIGKILL it right after a process() call, then restart it and let it catch up.
    After the kill, the committed offsets must be exact. Returns (ends, records per run, the record
    whose process() the kill followed, committed at the start, did)."""
    topic, ends, group, watcher, start_at = _layout(kafka, counts, pre)
    did = (f"ran {function}() in a child process on {_describe(ends, pre)} and SIGKILLed it right after its "
           f"{CRASH_AFTER}th process() call returned (before any more of your code ran)")
    run = start(impl_path, wd, kafka, topic, group, "first", function, crash_after=CRASH_AFTER)
    try:
        before = wait_crash(run, kafka, group, topic, ends, CRASH_AFTER, did)
    finally:
        run.close()
    _check_run(before, start_at, ends, did, "the first run")
    crashed = before[-1]
    # At-least-once had not committed the record in hand yet; at-most-once committed it before process().
    want = expected_commits(start_at, before, not_committed=crashed if function == AT_LEAST_ONCE else None)
    after = _check_commits(watcher, want, did, "right after the kill", f"the run processed {show_records(before)}, "
                           f"the kill coming right after p{crashed[0]}@{crashed[1]}", function,
                           (ends, start_at, before, crashed))
    did += ", then started it again with the same group id and let it catch up"
    expected = records_between(start_at, ends) - ({crashed} if function == AT_MOST_ONCE else set())
    run = start(impl_path, wd, kafka, topic, group, "second", function)
    try:
        again = finish(run, kafka, group, topic, ends, expected, before, did, stop=False,
                       own=records_between(after, ends))
        _check_run(again, after, ends, did, "the restarted run")
        # A zombie must stop: another instance with the same static member id fences this one.
        did = fence(run, kafka, group, topic, did)
    finally:
        run.close()
    _check_commits(watcher, expected_commits(after, again), did, "after it ended",
                   f"{len(again)} records processed after the restart", function, (ends, after, again))
    return ends, before, again, crashed, start_at, did


def _hold(kafka, impl_path, wd, function, counts, pre):
    """Run `function` with a process() that does not return from its HOLD_AT-th call. Returns (ends,
    group's committed offsets watcher, held record, records before it, committed at the start, did)."""
    topic, ends, group, watcher, start_at = _layout(kafka, counts, pre)
    did = (f"ran {function}() in a child process on {_describe(ends, pre)}; its {HOLD_AT}th process() call did "
           f"not return: it kept the record 'in processing' for up to {HOLD_S:.1f}s while the check watched the "
           "group's committed offsets, then the consumer was SIGKILLed mid-processing")
    run = start(impl_path, wd, kafka, topic, group, "first", function, hold_at=HOLD_AT)
    try:
        held = wait_hold(run, kafka, group, topic, ends, HOLD_AT, did)
        before = processed(run, did, ends)
        _check_run(before, start_at, ends, did, "the first run")
        # Both commit every record synchronously: as the held call begins, the broker has every record before
        # it, and (at-most-once) the held one too. At-least-once must then hold still for the whole hold.
        at_most = function == AT_MOST_ONCE
        want = expected_commits(start_at, before + [held] if at_most else before)
        _check_commits(watcher, want, did, "as the held process() call began",
                       f"{len(before)} records processed before p{held[0]}@{held[1]}", function,
                       (ends, start_at, before, held))
        if not at_most:
            at_kill = watch_while_held(watcher, held[0], held[1], HOLD_S)
            if (at_kill.get(held[0]) or 0) > held[1]:
                pictures.attach(commit_picture("Committed offsets while process() still held the red record", ends,
                                               start_at, before, held, at_kill, want))
                explain(did=did, saw=f"while process() was still working on partition {held[0]} offset {held[1]}, "
                        f"the group's committed offsets became {show(at_kill)}",
                        expected=f"at-least-once: partition {held[0]} committed no further than {held[1]} until "
                        "process() returned for it: after this crash a restart would skip it",
                        nudge="what does the broker hear about a record before your process() call returns? Think "
                        "of every way an offset can get committed, including ones librdkafka does on its own.")
            _check_commits(watcher, want, did, "when it was killed", f"{len(before)} records processed, "
                           f"p{held[0]}@{held[1]} still in processing", function, (ends, start_at, before, held))
        run.kill()
    finally:
        run.close()
    did += ", then started it again with the same group id and let it catch up"
    expected = records_between(start_at, ends) - ({held} if at_most else set())
    # No partition-EOF events in this run: its stop, once idle, is timed (an EOF would wake a long poll()).
    after = expected_commits(start_at, before + [held] if at_most else before)
    second = start(impl_path, wd, kafka, topic, group, "second", function, eof=False)
    try:
        again = finish(second, kafka, group, topic, ends, expected, before, did, own=records_between(after, ends))
    finally:
        second.close()
    _check_run(again, after, ends, did, "the restarted run")
    _check_commits(watcher, expected_commits(after, again), did + ", then stopped it", "after it returned",
                   f"{len(again)} records processed after the restart", function, (ends, after, again))
    return ends, held, before, again, start_at, did


def _across_runs(ends, start_at, every, crash):
    """What process() received over both runs: repeats show as digits, the killed record in red."""
    pictures.attach(commit_picture("What process() received across both runs: a digit marks a record received "
                                   "more than once, pale ones were never received", ends, start_at, every, crash))


def test_at_most_once_never_repeats(kafka, impl_path, wd):
    """At-most-once, killed right after processing a record: no record is ever processed twice."""
    ends, before, again, crashed, start_at, did = _crash_right_after(kafka, impl_path, wd, AT_MOST_ONCE,
                                                                     [10, 0, 9, 8], {2: 4})
    every = before + again
    if duplicates(every):
        _across_runs(ends, start_at, every, crashed)
        explain(did=did, saw=f"process() received {show_records(duplicates(every))} twice",
                expected="at-most-once: no record handed to process() a second time, whatever the moment of the crash",
                nudge="a restart resumes at the committed offset. For a record never to come back, what must already "
                "be on the broker when process() is called?", seen_in="your process() calls")
    missing = records_between(start_at, ends) - set(every)
    if missing:
        _across_runs(ends, start_at, every, crashed)
        explain(did=did, saw=f"no run processed {show_records(missing)}",
                expected="nothing lost here: at-most-once may only lose a record whose processing was cut short, and "
                "this crash came after process() had returned",
                nudge="commit the record in hand, not records you have not handed to process() yet.",
                seen_in="your process() calls")


def test_at_most_once_drops_the_record_in_flight(kafka, impl_path, wd):
    """At-most-once, killed mid-processing: the record in hand was already committed and never comes back."""
    ends, held, before, again, start_at, did = _hold(kafka, impl_path, wd, AT_MOST_ONCE, [7, 8, 0, 9], {1: 2})
    if held in again:
        _across_runs(ends, start_at, before + again, held)
        explain(did=did, saw=f"the record being processed when the consumer died (p{held[0]}@{held[1]}) was handed "
                "to process() again after the restart",
                expected=f"at-most-once: partition {held[0]} committed past offset {held[1]} before process() was "
                "called for it, so a restart never sees it again",
                nudge="at-most-once gives up the record in hand to make sure nothing is ever done twice. Which has "
                "to happen first: the commit or the processing?", seen_in="your process() calls")
    if duplicates(before + again):
        _across_runs(ends, start_at, before + again, held)
        explain(did=did, saw=f"process() received {show_records(duplicates(before + again))} twice",
                expected="at-most-once: no record handed to process() a second time", seen_in="your process() calls")
    missing = records_between(start_at, ends) - {held} - set(before) - set(again)
    if missing:
        _across_runs(ends, start_at, before + again, held)
        explain(did=did, saw=f"apart from the record in processing at the kill (p{held[0]}@{held[1]}), neither run "
                f"processed {show_records(missing)}", expected="only the record in hand lost: every other record "
                "processed once", nudge="commit the record in hand, not records you have not handed to process() yet.",
                seen_in="your process() calls")


def test_at_least_once_repeats_the_crashed_record(kafka, impl_path, wd):
    """At-least-once, killed right after processing a record: exactly that record is processed again."""
    ends, before, again, crashed, start_at, did = _crash_right_after(kafka, impl_path, wd, AT_LEAST_ONCE,
                                                                     [9, 8, 0, 10], {0: 3})
    every = before + again
    missing = records_between(start_at, ends) - set(every)
    if missing:
        _across_runs(ends, start_at, every, crashed)
        explain(did=did, saw=f"no run processed {show_records(missing)}",
                expected="at-least-once: every record processed at least once", seen_in="your process() calls",
                nudge="what did the group have committed when the consumer died, and which of those records had "
                "really been processed?")
    if duplicates(every) != [crashed]:
        _across_runs(ends, start_at, every, crashed)
        explain(did=did, saw=f"across the runs, process() received {show_records(duplicates(every)) or 'nothing'} "
                "twice", expected=f"at-least-once with a synchronous commit after every record: exactly the record "
                f"killed before its commit could run processed again (p{crashed[0]}@{crashed[1]}), no other",
                nudge="if the commit happens before process() returns, the record in hand is never repeated; if it "
                "happens later than right after it, more records are.", seen_in="your process() calls")


def test_at_least_once_never_loses_the_record_in_flight(kafka, impl_path, wd):
    """At-least-once, killed mid-processing: the record in hand is not committed, and the restart processes it."""
    ends, held, before, again, start_at, did = _hold(kafka, impl_path, wd, AT_LEAST_ONCE, [8, 0, 9, 7], {3: 5})
    if held not in again:
        _across_runs(ends, start_at, before + again, held)
        explain(did=did, saw=f"the record being processed when the consumer died (p{held[0]}@{held[1]}) never "
                "reached process() again: it is lost", expected="at-least-once: the restart processes it",
                nudge="an offset should reach the group only once its record is done.", seen_in="your process() calls")
    missing = records_between(start_at, ends) - set(before) - set(again)
    if missing:
        _across_runs(ends, start_at, before + again, held)
        explain(did=did, saw=f"neither run processed {show_records(missing)}",
                expected="at-least-once: every record processed at least once", seen_in="your process() calls")
    if duplicates(before + again):
        _across_runs(ends, start_at, before + again, held)
        explain(did=did, saw=f"process() received {show_records(duplicates(before + again))} in both runs",
                expected="only the record in processing at the kill processed again: the others were committed",
                seen_in="your process() calls")


def test_busy_consumers_commit_in_step_and_stop_promptly(kafka, impl_path, wd):
    """While busy, both consumers commit every record in step; asked to stop, both return within about a second."""
    runs = []
    try:
        for function in (AT_MOST_ONCE, AT_LEAST_ONCE):
            topic, ends, group, watcher, start_at = _layout(kafka, [10000, 10000], {})
            runs.append((function, ends, group, topic, watcher, start(impl_path, wd, kafka, topic, group, "busy",
                                                                       function)))
        for function, ends, group, topic, watcher, run in runs:
            did = (f"ran {function}() in a child process on {_describe(ends, {})} ({total(ends)} records: more than "
                   "it can process in a few seconds) and, while it was busy, compared what process() had received "
                   "with the committed offsets")
            wait_records(run, kafka, group, topic, ends, 40, did)
            committed_while_busy(run, watcher, ends, did, last_too=function == AT_MOST_ONCE, nudge=NUDGE[function])
            took = stop_in_time(run, did, f"while records were still waiting (limit {STOP_LIMIT_S:.1f}s)")
            records = processed(run, did, ends)
            _check_run(records, {}, ends, did, "this run")
            _check_commits(watcher, expected_commits({p: None for p in ends}, records),
                           did + f", then stopped it (it returned after {took:.1f}s)", "after it returned",
                           f"{len(records)} records processed", function)
    finally:
        for *_, run in runs:
            run.close()
