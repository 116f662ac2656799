"""Hidden checks for kata-04 (manual commit). Never shown to learners.

Each check runs the learner's consume() in child processes on a topic of numbered records (several
partitions, some empty, some already committed for the group before the run), kills it (SIGKILL)
right after a process() call or in the middle of one, starts it again, and compares what process()
received in every run with the group's committed offsets on the broker, partition by partition: after
each record, the committed offset of its partition is exactly its offset + 1.
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

FUNCTION = "consume"  # the contract of kata-04's stub

COMMIT_NUDGE = "commit each record, for its own partition, once process() has returned for it, and nothing else."


@pytest.fixture
def wd(tmp_path):
    with workdir(tmp_path) as path:
        yield path


def _layout(kafka, counts, pre):
    topic, ends = make_topic(kafka, counts)
    group = kafka.unique("group")
    if pre:
        precommit(kafka, group, topic, pre)
    start_at = {p: pre.get(p) for p in ends}
    return topic, ends, group, Committed(kafka, group, topic, len(counts)), start_at


def _describe(ends, pre) -> str:
    parts = ", ".join(f"p{p}: {n} records" + (f", committed at {pre[p]}" if p in pre else "") for p, n in ends.items())
    return f"a {len(ends)}-partition topic ({parts})"


def _check_commits(watcher, want, did, when, processed_text, layout=None):
    """layout: (ends, start offsets, records processed, crash record) for the picture of a failure."""
    got = watcher.read()
    wrong = differ(got, want)
    if wrong:
        if layout:
            pictures.attach(commit_picture(f"Committed offsets {when}", *layout, got=got, want=want))
        explain(did=did, saw=f"{when}, committed offsets {show(got)} ({processed_text}); partitions {wrong} differ",
                expected=f"committed offsets {show(want)}: for every partition, the offset after the last record "
                "processed, and nothing where nothing was processed",
                nudge=direction(got, want) + COMMIT_NUDGE)
    return got


def _check_run(records, expected, did, label, layout=None):
    """layout: (ends, start offsets) for the picture of a failure."""
    def picture(what):
        if layout:
            pictures.attach(commit_picture(f"What process() received {label}: {what}", *layout, records))
    dupes = duplicates(records)
    if dupes:
        picture("a digit marks a record received more than once")
        explain(did=did, saw=f"{label}: process() received {show_records(dupes)} more than once",
                expected="each record handed to process() once per run", seen_in="your process() calls")
    bad_order = out_of_order(records)
    if bad_order:
        picture("records out of offset order")
        explain(did=did, saw=f"{label}: process() received {show_records(bad_order)} after a later offset of the "
                "same partition", expected="each partition's records processed in offset order, as received",
                seen_in="your process() calls")
    extra = set(records) - expected
    if extra:
        picture("records before the committed offsets (grey) were received")
        explain(did=did, saw=f"{label}: process() received {show_records(extra)}, which the group had already "
                "committed", expected="a consumer of the group starts each partition at its committed offset",
                nudge="does your code move the position somewhere other than where the group left off?",
                seen_in="your process() calls")


def test_clean_run_commits_what_it_processed(kafka, impl_path, wd):
    """Without a crash, every record from the committed offsets on is processed once and committed exactly; a
    second instance with the same member id fences the first, which ends with an error."""
    pre = {0: 3, 1: 9}  # partition 1 is caught up; 2 is empty; 3 has never been committed
    topic, ends, group, watcher, start_at = _layout(kafka, [8, 9, 0, 7], pre)
    expected = records_between(start_at, ends)
    did = (f"ran consume() in a child process on {_describe(ends, pre)} and waited until process() had seen "
           f"the {len(expected)} records after the committed offsets")
    run = start(impl_path, wd, kafka, topic, group, "clean", FUNCTION)
    try:
        records = finish(run, kafka, group, topic, ends, expected, [], did, stop=False)
        missing = expected - set(records)
        if missing:
            pictures.attach(commit_picture("What process() received: pale squares were never received",
                                           ends, start_at, records))
            explain(did=did, saw=f"process() never received {show_records(missing)}",
                    expected=f"all {len(expected)} records from the committed offsets (or, where the group has none, "
                    "from the first record) to the end handed to process()",
                    nudge="where does a consumer of a group start a partition that has a committed offset, and one "
                    "that has none?", seen_in="your process() calls")
        _check_run(records, expected, did, "in a run without failures", (ends, start_at))
        _check_commits(watcher, expected_commits(start_at, records), did, "with every record processed",
                       f"{len(records)} records processed", (ends, start_at, records))
        did = fence(run, kafka, group, topic, did)
    finally:
        run.close()
    _check_commits(watcher, expected_commits(start_at, records), did, "after it ended",
                   f"{len(records)} records processed", (ends, start_at, records))


def test_restart_after_crash_resumes_at_last_commit(kafka, impl_path, wd):
    """Killed right after processing a record, twice, then restarted: it resumes at its last commit each time."""
    pre = {2: 4}
    topic, ends, group, watcher, start_at = _layout(kafka, [10, 0, 9, 8], pre)
    expected = records_between(start_at, ends)
    did = (f"ran consume() in a child process on {_describe(ends, pre)}, SIGKILLed it right after its 9th "
           "process() call returned (before any more of your code ran), started it again with the same group id "
           "and SIGKILLed it right after its 6th")
    done: list = []
    crashed: list = []
    for n, crash_after in enumerate((9, 6), 1):
        run = start(impl_path, wd, kafka, topic, group, f"run-{n}", FUNCTION, crash_after=crash_after)
        try:
            records = wait_crash(run, kafka, group, topic, ends, crash_after, did)
        finally:
            run.close()
        label = "the first run" if n == 1 else "the restarted run"
        if n == 2:
            first: dict = {}
            for p, o in records:
                first.setdefault(p, o)
            if any(o != (start_at[p] or 0) for p, o in first.items()):
                explain(did=did, saw=f"the restarted consumer began at {show(first)} while the committed offsets "
                        f"were {show(start_at)}", expected="the restart to resume exactly at the committed offsets",
                        nudge="a consumer in a group starts each partition at the group's committed offset. Does your "
                        "code move the position somewhere else?", seen_in="your process() calls")
        _check_run(records, records_between(start_at, ends), did, label, (ends, start_at))
        crashed.append(records[-1])
        start_at = _check_commits(watcher, expected_commits(start_at, records, not_committed=records[-1]), did,
                                  f"right after the kill of {label}",
                                  f"{label} processed {show_records(records)}, the kill coming right after "
                                  f"p{records[-1][0]}@{records[-1][1]}", (ends, start_at, records, records[-1]))
        done += records

    did += ", then started it a third time and let it catch up"
    # No partition-EOF events in this run: its stop, once idle, is timed (an EOF would wake a long poll()).
    run = start(impl_path, wd, kafka, topic, group, "run-3", FUNCTION, eof=False)
    try:
        again = finish(run, kafka, group, topic, ends, expected, done, did, own=records_between(start_at, ends))
    finally:
        run.close()
    missing = expected - set(done) - set(again)
    if missing:
        explain(did=did, saw=f"no run processed {show_records(missing)}",
                expected="every record processed at least once across the runs", seen_in="your process() calls")
    redone = duplicates(done + again)
    if redone != sorted(set(crashed)):
        pictures.attach(commit_picture("What process() received across the three runs: a digit marks a record "
                                       "received more than once", ends, {}, done + again))
        explain(did=did, saw=f"across the runs, process() received {show_records(redone) or 'nothing'} twice",
                expected=f"exactly the records killed before their commit could run processed twice: "
                f"{show_records(crashed)}", nudge="which records are processed twice after a crash depends only on "
                "when you commit, and whether the commit has reached the broker before the next record.",
                seen_in="your process() calls")
    _check_commits(watcher, expected_commits(start_at, again), did + ", then stopped it", "after it returned",
                   f"{len(again)} records processed in the last run", (ends, start_at, again))


def test_crash_mid_processing_loses_nothing(kafka, impl_path, wd):
    """Killed in the middle of processing a record: that record is not committed, and the restart processes it."""
    hold_at = 11
    pre = {1: 2}
    topic, ends, group, watcher, start_at = _layout(kafka, [7, 8, 9], pre)
    expected = records_between(start_at, ends)
    did = (f"ran consume() in a child process on {_describe(ends, pre)}; its {hold_at}th process() call did not "
           f"return: it kept the record 'in processing' for {HOLD_S:.1f}s while the check watched the group's "
           "committed offsets, then the consumer was SIGKILLed mid-processing")
    first = start(impl_path, wd, kafka, topic, group, "first", FUNCTION, hold_at=hold_at)
    try:
        partition, offset = wait_hold(first, kafka, group, topic, ends, hold_at, did)
        before = processed(first, did, ends)
        # Every record before the held one was committed before the next was taken: on the broker already.
        _check_commits(watcher, expected_commits(start_at, before), did, "as the held process() call began",
                       f"{len(before)} records processed before it", (ends, start_at, before))
        at_kill = watch_while_held(watcher, partition, offset, HOLD_S)
        first.kill()
    finally:
        first.close()
    if (at_kill.get(partition) or 0) > offset:
        pictures.attach(commit_picture("Committed offsets while process() still held the red record",
                                       ends, start_at, before, (partition, offset), at_kill,
                                       expected_commits(start_at, before)))
        explain(did=did, saw=f"while process() was still working on partition {partition} offset {offset}, the "
                f"group's committed offset for partition {partition} was already {at_kill[partition]} "
                f"(all committed offsets: {show(at_kill)})",
                expected=f"partition {partition} committed no further than {offset} until process() returns for "
                "that record: after this crash a restart would skip it",
                nudge="what does the broker hear about a record before your process() call returns? Think of "
                "every way an offset can get committed, including ones librdkafka does on its own.")
    _check_commits(watcher, expected_commits(start_at, before), did, "when it was killed",
                   f"{len(before)} records processed, p{partition}@{offset} still in processing",
                   (ends, start_at, before, (partition, offset)))

    did_restart = did + "; then started consume() again with the same group id"
    second = start(impl_path, wd, kafka, topic, group, "second", FUNCTION)
    try:
        again = finish(second, kafka, group, topic, ends, expected, before, did_restart,
                       own=records_between(expected_commits(start_at, before), ends))
    finally:
        second.close()
    if (partition, offset) not in again:
        pictures.attach(commit_picture("What process() received across both runs: the red record was lost",
                                       ends, start_at, before + again, (partition, offset)))
        explain(did=did_restart, saw=f"the record being processed when the consumer died (partition {partition}, "
                f"offset {offset}) never reached process() again: it is lost",
                expected="the restarted consumer to process it: its processing never finished",
                nudge="an offset should reach the group only once its record is done.",
                seen_in="your process() calls")
    missing = expected - set(before) - set(again)
    if missing:
        explain(did=did_restart, saw=f"neither run processed {show_records(missing)}",
                expected="every record processed at least once across the two runs", seen_in="your process() calls")
    if duplicates(before + again):
        pictures.attach(commit_picture("What process() received across both runs: a digit marks a record "
                                       "received more than once", ends, start_at, before + again, (partition, offset)))
        explain(did=did_restart, saw=f"process() received {show_records(duplicates(before + again))} in both runs",
                expected="only the record in processing at the kill processed again: the others were committed",
                seen_in="your process() calls")
    _check_commits(watcher, expected_commits(start_at, before + again), did_restart + ", then stopped it",
                   "after it returned", f"{len(again)} records processed in the second run",
                   (ends, start_at, before + again))


def test_busy_consumer_commits_in_step_and_stops_promptly(kafka, impl_path, wd):
    """While busy, every record is committed before the next; asked to stop, it returns within about a second."""
    topic, ends, group, watcher, start_at = _layout(kafka, [10000, 10000], {})
    did = (f"ran consume() in a child process on {_describe(ends, {})} ({total(ends)} records: more than it can "
           "process in a few seconds) and, while it was busy, compared what process() had received with the "
           "committed offsets")
    run = start(impl_path, wd, kafka, topic, group, "busy", FUNCTION)
    try:
        wait_records(run, kafka, group, topic, ends, 40, did)
        committed_while_busy(run, watcher, ends, did, last_too=False,
                             nudge="commit each record synchronously once process() has returned, before you take the "
                             "next one: a commit still in flight, or one saved for later, is lost in a crash.")
        took = stop_in_time(run, did, f"while records were still waiting (limit {STOP_LIMIT_S:.1f}s)")
        records = processed(run, did, ends)
    finally:
        run.close()
    _check_run(records, records_between(start_at, ends), did, "this run", (ends, start_at))
    _check_commits(watcher, expected_commits(start_at, records), did + f", then stopped it (it returned after "
                   f"{took:.1f}s)", "after it returned", f"{len(records)} records processed", (ends, start_at, records))
