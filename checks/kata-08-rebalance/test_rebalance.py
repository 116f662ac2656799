"""Hidden checks for kata-08 (rebalancing). Never shown to learners.

Each check streams messages into a topic while copies of the learner's run_member() join, leave,
die (SIGKILL right after a process() call) or freeze (SIGSTOP past the session timeout), then
compares what every member's process() received with the topic's end offsets and the group's
committed offsets on the broker.
"""

import json

from _kata08_pictures import Timeline, attach_bars, attach_repeats
from _kata08_support import (
    PARTITIONS,
    STREAM_RATE,
    Member,
    Stream,
    committed_offsets,
    describe_dupes,
    describe_group,
    expect_only_messages,
    explain_missing,
    last_message_then_stop,
    stop_and_wait,
    tally,
    wait_all_processed,
    wait_until,
)

from grader.kit import explain

# Fast heartbeats: members hear about a rebalance within a fraction of a second. A short auto-commit
# interval does nothing to a member that commits by hand, and makes one that auto-commits show at once.
FAST = {"heartbeat.interval.ms": 300, "auto.commit.interval.ms": 100}
HANDOVER_CONFIG = {**FAST, "session.timeout.ms": 6000}  # nobody dies here: keep it safe
FAILURE_CONFIG = {**FAST, "session.timeout.ms": 1500}  # a dead member is noticed in ~1.5s
BIG_BATCH = 100_000  # "commit rarely": only the revoke commits can save a handover
SMALL_BATCH = 10
HOLD_AT = 40  # A is killed while processing its 40th message: 30 committed in 3 batches, 9 not
FREEZES = 4  # at most, until a thawed member comes back with other partitions than it had (1 in 16 never does)


def test_clean_handovers_duplicate_nothing(kafka, impl_path, tmp_path):
    """Members join and leave cleanly mid-stream: nothing is lost and nothing is processed twice."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    group = kafka.unique("group")

    def view():
        return describe_group(kafka, group, topic)

    def member(name):
        return Member(name, impl_path, tmp_path, kafka, topic, group, BIG_BATCH, HANDOVER_CONFIG)

    stream = Stream(kafka, topic).start()
    a = member("A")
    members = [a]
    stopped = False
    tl = Timeline(kafka, group, topic, members=("A", "B", "C"))
    tl.did(f"stream {STREAM_RATE} msg/s into {PARTITIONS} partitions; start A (commit_every={BIG_BATCH})")
    try:
        did = (f"streamed {STREAM_RATE} messages/s into a {PARTITIONS}-partition topic; member A "
               f"(commit_every={BIG_BATCH}) consumed alone")
        wait_until(did, lambda: a.count() >= 40, "member A to process 40 messages", (a,),
                   show=lambda: f"A processed {a.count()}; {view().describe()}")
        # Then half a second more of live messages: long enough for any background commit to show.
        mark = stream.sent + STREAM_RATE // 2
        wait_until(did, lambda: a.count() >= mark, f"member A to process {mark} messages", (a,),
                   show=lambda: f"A processed {a.count()}; {view().describe()}")
        tl.owners(view(), joined="A")
        tl.did(f"A processed {a.count()} messages")
        now = committed_offsets(kafka, group, topic)
        tl.offsets("committed offsets", now)
        early = {p: o for p, o in now.items() if o != "none"}
        if early:
            explain(did=did + ", before any member joined or left",
                    saw=f"the group already had committed offsets {early} after A processed {a.count()} messages",
                    expected=f"no commit yet: commit_every is {BIG_BATCH} and no partition had been revoked",
                    nudge="commit when commit_every messages were processed since your last commit, and when "
                    "partitions are taken away. Is something committing on its own, in the background?")

        b = member("B")
        members.append(b)
        did += "; member B joined"
        tl.did(f"start B (A had processed {a.count()})")
        wait_until(did, lambda: view().settled(2) and b.count() >= 40,
                   "the broker to show A and B sharing the partitions, and B to process 40 messages", (a, b),
                   show=lambda: f"B processed {b.count()}; {view().describe()}")
        tl.owners(view(), joined="B")
        tl.committed("committed after the handover to A and B")

        mark = a.count()
        tl.did(f"ask B to stop (B had processed {b.count()})")
        stop_and_wait(did, b)
        did += "; B left (should_stop() -> close())"
        wait_until(did, lambda: view().settled(1) and a.count() >= mark + 40,
                   "A to own every partition again and process 40 more messages", (a,),
                   show=lambda: f"A processed {a.count() - mark} since; {view().describe()}")
        tl.owners(view())
        tl.committed("committed after B left")

        ends = stream.stop()
        stopped = True
        total = sum(ends.values())
        did += f"; the stream stopped at {total} messages"
        tl.did("stop the stream: partitions end at " + ", ".join(f"p{p} {o}" for p, o in sorted(ends.items())))
        wait_all_processed(did, tuple(members), ends, alive=(a,))

        c = member("C")
        members.append(c)
        did += "; member C joined the now quiet group"
        tl.did("start C on the quiet topic")
        wait_until(did, lambda: view().settled(2), "A and C to share the partitions", (a, c),
                   show=lambda: view().describe())
        tl.owners(view(), joined="C")
        tl.did("write 1 message to p0; once processed, ask C and A to stop")
        ends = last_message_then_stop(kafka, topic, did, (a, c), tuple(members))
        total = sum(ends.values())
        did += "; one more message to partition 0, then C and A left"

        expect_only_messages(did, tuple(members))
        missing, dupes, _, who = tally(tuple(members), ends)
        tl.did(f"count process() calls: {len(missing)} of {total} never processed, {len(dupes)} twice",
               "missing" if missing else "duplicate" if dupes else "")
        tl.committed("committed at the end", expect=ends)
        attach_repeats("Messages lost or processed twice, and who processed them", missing, dupes, who)
        if missing:
            explain_missing(did, missing, total, committed_offsets(kafka, group, topic))
        if dupes:
            explain(did=did, saw=describe_dupes(dupes, who),
                    expected="zero duplicates: after a clean handover the next owner starts exactly where the "
                    "previous one stopped",
                    nudge="the next owner of a partition starts at the group's committed offset. When the group "
                    "takes partitions away from a member, what should the member do before letting go?")
        committed = committed_offsets(kafka, group, topic)
        if committed != ends:
            explain(did=did, saw=f"the group's committed offsets are {committed}",
                    expected=f"{ends} (each partition's end offset): members that leave commit what they processed",
                    nudge="the committed offset is the offset of the next message to read. And close() takes "
                    "partitions away too.")
    finally:
        tl.attach("What the check did to the group, and what the broker recorded")
        if not stopped:
            stream.stop()
        for m in members:
            m.close()


def test_killed_member_duplicates_at_most_commit_every(kafka, impl_path, tmp_path):
    """A member killed mid-message loses nothing, and only what it processed since its last commit repeats."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    group = kafka.unique("group")

    def view():
        return describe_group(kafka, group, topic)

    a = Member("A", impl_path, tmp_path, kafka, topic, group, SMALL_BATCH, FAILURE_CONFIG, hold_at=HOLD_AT)
    b = Member("B", impl_path, tmp_path, kafka, topic, group, SMALL_BATCH, FAILURE_CONFIG)
    stream = None
    tl = Timeline(kafka, group, topic)
    tl.did(f"start A and B (commit_every={SMALL_BATCH}, session.timeout.ms={FAILURE_CONFIG['session.timeout.ms']})")
    takeover: dict = {}
    held, ends = None, {}
    try:
        did = (f"started members A and B (commit_every={SMALL_BATCH}, "
               f"session.timeout.ms={FAILURE_CONFIG['session.timeout.ms']}) on a {PARTITIONS}-partition topic")
        wait_until(did, lambda: view().settled(2), "the broker to show A and B sharing the partitions", (a, b),
                   show=lambda: view().describe())
        tl.owners(view())
        tl.did(f"stream {STREAM_RATE} msg/s; A's {HOLD_AT}th process() call will never return")
        stream = Stream(kafka, topic).start()
        did += (f", streamed {STREAM_RATE} messages/s, and killed A (SIGKILL) while its {HOLD_AT}th process() call "
                "was still running")
        wait_until(did, lambda: a.run.hold_file.exists(), f"A to start processing its {HOLD_AT}th message", (a, b),
                   show=lambda: f"A processed {a.count()}")
        held = json.loads(a.run.hold_file.read_text())
        early = committed_offsets(kafka, group, topic).get(held["partition"])
        tl.did(f"A is inside process() of p{held['partition']} offset {held['offset']} ({a.count()} returned before)")
        tl.saw(f"committed on p{held['partition']} meanwhile: {early}",
               "extra" if isinstance(early, int) and early > held["offset"] else "")
        if isinstance(early, int) and early > held["offset"]:
            explain(did=did, saw=f"while A was still processing partition {held['partition']} offset "
                    f"{held['offset']}, the group had already committed offset {early} there",
                    expected="a committed offset that covers only messages whose process() call has returned",
                    nudge="a commit says \"everything before this offset is done\". When do you commit, relative "
                    "to processing the message?")
        a.run.kill()
        tl.did("SIGKILL A, still inside that process() call", "crash")
        wait_until(did, lambda: view().settled(1), "B to take over A's partitions once A's session timed out", (b,),
                   show=lambda: view().describe())
        tl.owners(view(), remaining="B")
        takeover = tl.committed("committed when B took over (B starts there)")
        mark = b.count()
        wait_until(did, lambda: b.count() >= mark + 40, "B to process 40 messages after the takeover", (b,))
        ends = stream.stop()
        stream = None
        total = sum(ends.values())
        did += f"; the stream stopped at {total} messages"
        tl.did("stop the stream: partitions end at " + ", ".join(f"p{p} {o}" for p, o in sorted(ends.items())))
        wait_all_processed(did, (a, b), ends, alive=(b,))
        tl.did("ask B to stop")
        stop_and_wait(did, b)

        expect_only_messages(did, (a, b))
        missing, dupes, _, who = tally((a, b), ends)
        # 39 messages processed, batches committed after the 10th, 20th and 30th: exactly 9 repeat.
        uncommitted = (HOLD_AT - 1) % SMALL_BATCH
        tl.did(f"count process() calls: {len(missing)} never processed, {len(dupes)} twice (expected "
               f"{uncommitted})", "missing" if missing else "" if len(dupes) == uncommitted else "duplicate")
        attach_repeats("Messages lost or processed twice, and who processed them", missing, dupes, who)
        if missing:
            explain_missing(did, missing, total, committed_offsets(kafka, group, topic))
        if len(dupes) != uncommitted or any(who[pair] != ["A", "B"] for pair in dupes):
            explain(did=did, saw=describe_dupes(dupes, who) if dupes else "no message was processed twice",
                    expected=f"exactly {uncommitted} duplicates, all of them messages A processed after its last "
                    f"batch commit ({HOLD_AT - 1} processed, commit_every={SMALL_BATCH}); B picks up A's partitions "
                    "at A's last committed offset",
                    nudge=f"with commit_every={SMALL_BATCH}, a member commits after its 10th, 20th, 30th... message "
                    "since its last commit, not more often and not less. What did A hold, processed but "
                    "uncommitted, when it died?")
    finally:
        tl.attach("What the check did to the group, and what the broker recorded")
        if takeover:
            attach_bars("Processed per partition by A and B; C: committed when B took over; X: A killed "
                        "inside process()", (a, b), takeover, held, ends)
        if stream is not None:
            stream.stop()
        a.close()
        b.close()


def test_member_survives_losing_its_partitions(kafka, impl_path, tmp_path):
    """A member frozen past its session timeout loses its partitions, then rejoins and keeps working."""
    topic = kafka.create_topic(partitions=PARTITIONS)
    group = kafka.unique("group")

    def view():
        return describe_group(kafka, group, topic)

    # A big batch: when A loses its partitions it surely holds processed, uncommitted messages of
    # them, the very thing a member is tempted to commit on the way out.
    a = Member("A", impl_path, tmp_path, kafka, topic, group, BIG_BATCH, FAILURE_CONFIG)
    b = Member("B", impl_path, tmp_path, kafka, topic, group, BIG_BATCH, FAILURE_CONFIG)
    stream = None
    tl = Timeline(kafka, group, topic)
    tl.did(f"start A and B (commit_every={BIG_BATCH}, session.timeout.ms={FAILURE_CONFIG['session.timeout.ms']})")
    try:
        did = (f"started members A and B (commit_every={BIG_BATCH}, "
               f"session.timeout.ms={FAILURE_CONFIG['session.timeout.ms']}) on a {PARTITIONS}-partition topic")
        wait_until(did, lambda: view().settled(2), "the broker to show A and B sharing the partitions", (a, b),
                   show=lambda: view().describe())
        tl.owners(view())
        stream = Stream(kafka, topic).start()
        did += f", streamed {STREAM_RATE} messages/s"
        wait_until(did, lambda: a.count() >= 20, "A to process 20 messages", (a, b))
        did += ", then froze A (SIGSTOP) mid-stream"
        # Which partitions A gets back is up to the assignor (member ids sort at random): only when they are
        # not the ones it had is there something it must forget. Freeze it again until they differ.
        tl.did(f"stream {STREAM_RATE} msg/s")
        for freezes in range(1, FREEZES + 1):
            held = {part for part, _ in a.records()[-10:]}  # A's partitions now (its latest messages)
            a.pause()
            tl.did(f"SIGSTOP A after {a.count()} messages (frozen{f', time {freezes}' if freezes > 1 else ''})")
            wait_until(did, lambda: view().settled(1), "the broker to give every partition to B once A's session "
                       "timed out", (b,), show=lambda: view().describe())
            b_view = view()
            tl.owners(b_view, remaining="B")
            tl.committed()
            mark = a.count()
            a.run.reset_stop_gap()  # the freeze is the check's doing: time A's should_stop() calls from the thaw
            a.resume()
            tl.did("SIGCONT A: it wakes up holding partitions the group gave to B")
            wait_until(did + "; once B owned every partition, thawed A (SIGCONT), whose partitions were now lost",
                       lambda mark=mark: view().settled(2) and a.count() >= mark + 20,
                       "A to rejoin the group, get partitions again and process 20 new messages", (a, b),
                       show=lambda mark=mark: f"A processed {a.count() - mark} since; {view().describe()}",
                       ended_nudge="while A was frozen, the group gave A's partitions to B. What can A still do "
                       "with partitions that are no longer its own, and what answer does a commit for them get?")
            now = view()
            tl.owners(now, joined="A")
            b_ids = {m for m, _, _ in b_view.members}
            if {part for m, _, parts in now.members if m not in b_ids for part in parts} != held:
                break
        did += ("; once B owned every partition, thawed A (SIGCONT), whose partitions were now lost"
                + (f" (froze and thawed A {freezes} times, until it came back with other partitions)" if freezes > 1
                   else ""))
        tl.did(f"A processed {a.count() - mark} more since the thaw")
        ends = stream.stop()
        stream = None
        total = sum(ends.values())
        did += f"; the stream stopped at {total} messages"
        tl.did("stop the stream: partitions end at " + ", ".join(f"p{p} {o}" for p, o in sorted(ends.items())))
        wait_all_processed(did, (a, b), ends, alive=(a, b))
        # B first: its close() commits what it processed, and the rebalance makes A commit its own partitions
        # on revoke. Then every offset is committed, unless A still carries offsets of the partitions it lost.
        tl.did("ask B to stop")
        stop_and_wait(did, b)
        did += "; B left (should_stop() -> close())"
        wait_until(did, lambda: view().settled(1), "A to own every partition once B left", (a,),
                   show=lambda: view().describe())
        tl.owners(view(), remaining="A")
        handed = committed_offsets(kafka, group, topic)
        tl.offsets("committed once B left and A revoked its partitions", handed, expect=ends)
        if handed != ends:
            explain(did=did, saw=f"once B had left and A owned every partition, the group's committed offsets were "
                    f"{handed}", expected=f"{ends} (each partition's end offset): B commits what it processed as it "
                    "leaves, A commits its own partitions when the rebalance revokes them",
                    nudge="after losing partitions and rejoining, what does your member still remember about the "
                    "partitions it lost, and what does it commit on the next revoke?")
        tl.did("ask A to stop")
        stop_and_wait(did, a)

        expect_only_messages(did, (a, b))
        missing, dupes, _, who = tally((a, b), ends)
        tl.did(f"count process() calls: {len(missing)} never processed ({len(dupes)} twice: allowed here)",
               "missing" if missing else "")
        tl.committed("committed at the end", expect=ends)
        attach_repeats("Messages no member processed", missing, [], who)  # repeats are allowed here
        if missing:
            explain_missing(did, missing, total, committed_offsets(kafka, group, topic))
        committed = committed_offsets(kafka, group, topic)
        if committed != ends:
            explain(did=did, saw=f"the group's committed offsets are {committed}",
                    expected=f"{ends} (each partition's end offset) once both members left",
                    nudge="close() revokes a member's partitions one last time: is what it processed since its "
                    "last batch committed then? And after losing partitions and rejoining, does your bookkeeping "
                    "still track the partitions the member owns now?")
    finally:
        tl.attach("What the check did to the group, and what the broker recorded")
        if stream is not None:
            stream.stop()
        a.close()
        b.close()
