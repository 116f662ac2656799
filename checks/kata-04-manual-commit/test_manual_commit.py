"""Hidden checks for kata-04 (manual commit). Never shown to learners.

Each check runs the learner's consume() in a child process on a 3-partition topic of numbered
records, kills it (SIGKILL) right after a process() call or in the middle of one, starts it again,
and compares what process() received in both runs with the group's committed offsets on the broker.
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
    resume_at,
    show,
    show_records,
    start,
    start_holding,
    total,
    wait_crash,
    wait_hold,
    watch_while_held,
)

CRASH_AFTER = 10
HOLD_AT = 11
FUNCTION = "consume"  # the contract of kata-04's stub


def _check_final_commit(watcher, ends, did):
    committed = watcher.read()
    if committed != ends:
        explain(did=did, saw=f"committed offsets {show(committed)}; the partitions end at {show(ends)}",
                expected="the committed offset of every partition equal to its end offset once everything was "
                "processed",
                nudge="with auto-commit off, the group remembers only what your code commits. And a committed "
                "offset names the next record to read, not the last one read.")


def test_clean_run_commits_what_it_processed(kafka, impl_path, tmp_path):
    """Without a crash, every record is processed once and the committed offsets reach the end of each partition."""
    topic, ends = make_topic(kafka)
    group = kafka.unique("group")
    watcher = Committed(kafka, group, topic)
    did = (f"ran consume() in a child process on a {PARTITIONS}-partition topic holding {total(ends)} records, "
           "waited until process() had seen them all, then made should_stop() return True")
    run = start(impl_path, tmp_path, kafka, topic, group, "clean", FUNCTION)
    try:
        finish(run, all_records(ends), [], did)
        records = processed(run, did)
    finally:
        run.close()
    missing = all_records(ends) - set(records)
    if missing:
        explain(did=did, saw=f"process() never received {show_records(missing)}",
                expected=f"all {total(ends)} records handed to process()",
                nudge="a new group has no committed offsets: where does librdkafka start reading then?")
    if duplicates(records):
        explain(did=did, saw=f"process() received {show_records(duplicates(records))} more than once, without "
                "any crash", expected="each record processed exactly once in a run without failures")
    _check_final_commit(watcher, ends, did)


def test_restart_after_crash_resumes_at_last_commit(kafka, impl_path, tmp_path):
    """Killed right after processing a record, then restarted: it resumes at its last commit and loses nothing."""
    topic, ends = make_topic(kafka)
    group = kafka.unique("group")
    watcher = Committed(kafka, group, topic)
    did = (f"ran consume() in a child process on {total(ends)} records in {PARTITIONS} partitions and SIGKILLed it "
           f"right after its {CRASH_AFTER}th process() call returned, before any more of your code ran")
    first = start(impl_path, tmp_path, kafka, topic, group, "first", FUNCTION, crash_after=CRASH_AFTER)
    try:
        wait_crash(first, CRASH_AFTER, did)
        before = processed(first, did)
    finally:
        first.close()
    crashed = before[-1]
    after_crash = watcher.read()
    expected_resume = {p: max([o + 1 for q, o in before if q == p], default=0) for p in range(PARTITIONS)}
    expected_resume[crashed[0]] = crashed[1]  # processed, but killed before its commit could run
    # As the learner would read it: "none" where nothing was processed (a restart starts those at 0 anyway).
    shown_resume = {p: (off if off or p in {q for q, _ in before} else None) for p, off in expected_resume.items()}
    resume = resume_at(after_crash)
    ahead = {p: off for p, off in resume.items() if off > expected_resume[p]}
    behind = {p: off for p, off in resume.items() if off < expected_resume[p]}
    if ahead.get(crashed[0]) == crashed[1] + 1 and len(ahead) == 1:
        explain(did=did, saw=f"the record being processed when the consumer died (partition {crashed[0]}, offset "
                f"{crashed[1]}) was already committed: committed offsets {show(after_crash)}",
                expected=f"partition {crashed[0]} committed up to offset {crashed[1]}: the kill came before any of "
                "your code after process() could run, so a commit made after processing could not have happened",
                nudge="if the commit happens before process() finishes, what becomes of that record when the "
                "crash comes in the middle of process() instead of right after it?")
    if ahead:
        explain(did=did, saw=f"committed offsets {show(after_crash)} although process() had only received "
                f"{show_records(before)}",
                expected=f"nothing committed beyond what was processed ({show(shown_resume)})",
                nudge="a committed offset tells a restarted consumer 'everything before this is done'.")
    if behind:
        redo = [(p, o) for p, o in before if o >= resume[p] and (p, o) != crashed]
        explain(did=did, saw=f"committed offsets {show(after_crash)} after {len(before)} records were processed, "
                f"so a restart would process {show_records(redo)} a second time",
                expected=f"every processed record committed except the one killed before its commit: "
                f"{show(shown_resume)}",
                nudge="the group only remembers what your consumer commits, and only once the commit has reached "
                "the broker. When does your code commit?")

    did_restart = did + ", then started consume() again with the same group id"
    second = start(impl_path, tmp_path, kafka, topic, group, "second", FUNCTION)
    try:
        finish(second, all_records(ends), before, did_restart)
        again = processed(second, did_restart)
    finally:
        second.close()
    missing = all_records(ends) - set(before) - set(again)
    if missing:
        explain(did=did_restart, saw=f"neither run processed {show_records(missing)}",
                expected="every record processed at least once across the two runs")
    firsts = {}
    for p, o in again:
        firsts.setdefault(p, o)
    wrong_start = {p: o for p, o in firsts.items() if o != resume[p]}
    if wrong_start:
        explain(did=did_restart, saw=f"the restarted consumer began at {show(firsts)} while the committed offsets "
                f"were {show(after_crash)}", expected="the restart to resume exactly at the committed offsets",
                nudge="a consumer in a group starts each partition at the group's committed offset. Does your "
                "code move the position somewhere else?")
    redone = sorted(set(before) & set(again))
    if redone != [crashed]:
        explain(did=did_restart, saw=f"the restarted consumer processed again {show_records(redone) or 'nothing'}",
                expected=f"exactly the one record that was processed but not yet committed: p{crashed[0]}@{crashed[1]}",
                nudge="which records are processed twice after a crash depends only on when you commit.")
    _check_final_commit(watcher, ends, did_restart + " until it caught up, and stopped it")


def test_crash_mid_processing_loses_nothing(kafka, impl_path, tmp_path):
    """Killed in the middle of processing a record: that record is not committed, and the restart processes it."""
    topic, ends = make_topic(kafka)
    group = kafka.unique("group")
    watcher = Committed(kafka, group, topic)
    did = (f"ran consume() in a child process on {total(ends)} records in {PARTITIONS} partitions; its "
           f"{HOLD_AT}th process() call did not return: it kept the record 'in processing' for up to "
           f"{HOLD_S:.1f}s while the check watched the group's committed offsets, then the consumer was SIGKILLed "
           "mid-processing")
    first, hold_file = start_holding(impl_path, tmp_path, kafka, topic, group, "first", FUNCTION, HOLD_AT)
    try:
        partition, offset = wait_hold(first, hold_file, HOLD_AT, did)
        at_kill = watch_while_held(watcher, partition, offset, HOLD_S)
        first.kill()
        before = processed(first, did)
    finally:
        first.close()
    if (at_kill.get(partition) or 0) > offset:
        explain(did=did, saw=f"while process() was still working on partition {partition} offset {offset}, the "
                f"group's committed offset for partition {partition} was already {at_kill[partition]} "
                f"(all committed offsets: {show(at_kill)})",
                expected=f"partition {partition} committed no further than {offset} until process() returns for "
                "that record: after this crash a restart would skip it",
                nudge="what does the broker hear about a record before your process() call returns? Think of "
                "every way an offset can get committed, including ones librdkafka does on its own.")

    did_restart = did + "; then started consume() again with the same group id"
    second = start(impl_path, tmp_path, kafka, topic, group, "second", FUNCTION)
    try:
        finish(second, all_records(ends), before, did_restart)
        again = processed(second, did_restart)
    finally:
        second.close()
    if (partition, offset) not in again:
        explain(did=did_restart, saw=f"the record being processed when the consumer died (partition {partition}, "
                f"offset {offset}) never reached process() again: it is lost",
                expected="the restarted consumer to process it: its processing never finished",
                nudge="an offset should reach the group only once its record is done.")
    missing = all_records(ends) - set(before) - set(again)
    if missing:
        explain(did=did_restart, saw=f"neither run processed {show_records(missing)}",
                expected="every record processed at least once across the two runs")
    _check_final_commit(watcher, ends, did_restart + " until it caught up, and stopped it")
