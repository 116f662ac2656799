"""Hidden checks for kata-06 (consumer groups). Never shown to learners.

Every check runs several copies of the learner's run_member() as separate processes with one
group id, asks the broker who owns which partition (AdminClient.describe_consumer_groups), and
compares that with what each member's process() callback actually received: members joining mid-run,
a topic that already holds messages, more members than partitions, a member leaving.
"""

import time

from _kata06_support import (
    FENCE_LIMIT_S,
    GROUP_DEADLINE_S,
    LEAVE_LIMIT_S,
    MEMBER_CONFIG,
    NO_PROGRESS_GIVE_UP_S,
    STOP_GAP_S,
    STOP_LIMIT_S,
    Trickle,
    check_alive,
    cleanup,
    client_id,
    processed,
    produce_per_partition,
    show_pairs,
    start_members,
    stop_timed,
    tally,
    wait_all_processed,
    wait_for_group,
    wait_members,
)

from grader.kit import explain

NO_GROUP_NUDGE = ("a consumer becomes a member of a group only when it subscribes to the topic with that group's "
                  "id; then the group, not your code, decides which partitions it reads.")
SEEN = "your process() calls"


def _explain_unsettled(did: str, view, members: int, partitions: int) -> None:
    if not view.members:
        nudge = NO_GROUP_NUDGE
    elif len(view.members) != members:
        nudge = "do all members join with the group id they were given, and keep polling so they stay in it?"
    else:
        nudge = "the group needs every member to keep polling so that a rebalance can complete."
    explain(did=did, saw=view.describe(),
            expected=f"a STABLE group of {members} members in which each of the {partitions} partitions is owned by "
            "exactly one member",
            nudge=nudge)


def _settle(kafka, runs, group, topic, members, partitions, did):
    settled, view = wait_for_group(kafka, runs, group, topic, members, partitions)
    if not settled:
        _explain_unsettled(did, view, members, partitions)
    theirs = sorted(set(view.client_ids) - {client_id(n) for n in range(1, len(runs) + 1)})
    if theirs:
        explain(did=did + f" (each member's config held a client.id of the check's: {client_id(1)!r} and so on)",
                saw=f"members with client.id {theirs} ({view.describe()})",
                expected="every member using the client.id the check passed in config",
                nudge="config holds settings the caller needs: are they applied on top of your own settings?")
    if any(not parts for _, parts in view.members):
        explain(did=did, saw=view.describe(),
                expected=f"with {partitions} partitions and {members} members, every member owns some",
                nudge="the group's assignor spreads partitions over all members that subscribed to the topic.")
    return view


def _check_processed(runs, ends, did, view, since=None, prefilled=0, one_reader=True):
    """Every message processed exactly once, nothing else processed, each partition read (from `since`
    on) by one member only. `prefilled`: how many messages per partition were there before the members
    started. Returns partition -> members."""
    check_alive(runs, did)
    for n, run in enumerate(runs, 1):
        odd = next((r for r in run.records() if "partition" not in r), None)
        if odd is not None:
            explain(did=did, saw=f"member {n} called process() with {odd.get('value')!r:.120} instead of a message",
                    expected="process(msg) called with the confluent_kafka.Message that poll() returned",
                    seen_in=SEEN)
    missing, dupes, counts, by_partition, extras = tally(runs, ends, since)
    total = sum(ends.values())
    if extras:
        explain(did=did, saw=f"process() was called for {show_pairs(extras)}, which are not messages of the topic "
                f"(the partitions end at {ends})", expected="process() called only for real messages",
                nudge="poll() also returns events that are not messages (msg.error() is set, for instance when a "
                "partition reaches its end). Those are not for process().", seen_in=SEEN)
    if missing:
        starved = sorted({p for p, _ in missing})
        early = all(o < prefilled for _, o in missing)
        explain(did=did, saw=f"{len(missing)} of {total} messages were never processed (no progress for "
                f"{NO_PROGRESS_GIVE_UP_S:.0f}s), on partitions {starved}: {show_pairs(missing)} ({view.describe()})",
                expected="every message processed by the member that owns its partition, including the messages "
                "that were in the topic before the members started",
                nudge="where does a member start reading a partition the group has never read: at its first message "
                "or at its end?" if early else
                "a member holds its partitions as long as it stays in the group, whether or not it reads them. "
                "What does a member have to keep doing for its assignment to take effect?", seen_in=SEEN)
    if dupes:
        p, o = dupes[0]
        explain(did=did, saw=f"{len(dupes)} of {total} messages were processed more than once (partition {p} "
                f"offset {o}: {counts[(p, o)]} times); partitions read by several members: "
                f"{ {p: sorted(m) for p, m in by_partition.items() if len(m) > 1} or 'none'}",
                expected="each message processed exactly once by the group as a whole",
                nudge="members of one group split the partitions between them; consumers in different groups (or "
                "consumers that pick partitions themselves) each read everything. And when a partition moves to "
                "another member, that member starts at the group's committed offset: is your group committing?",
                seen_in=SEEN)
    shared = {p: sorted(m) for p, m in by_partition.items() if len(m) > 1}
    if shared and one_reader:
        explain(did=did, saw=f"partitions read by several members: {shared}", seen_in=SEEN,
                expected="each partition read by its one owner", nudge=NO_GROUP_NUDGE)
    return by_partition


def _check_stops(runs, numbers, took, did, limit, what):
    slow = [n for n, t in zip(numbers, took, strict=True) if t is None]
    if slow:
        explain(did=did + f", then, {what}, made should_stop() return True for members {numbers}",
                saw=f"members {slow} were still running {limit:.1f}s later", seen_in="the clock",
                expected="run_member notices within a second (should_stop() checked at least once a second, even "
                "when no message arrives), closes its consumer and returns",
                nudge="how long can your loop go without calling should_stop(): a long poll() timeout? a loop that "
                "only looks at should_stop() when no message arrives?")
    for n in numbers:
        run = runs[n - 1]
        if run.proc.returncode:
            err = run.error()
            explain(did=did + f", then made should_stop() return True for member {n}",
                    saw=f"member {n} ended with an error: "
                    + (f"{err['type']}: {err['message']}" if err else run.output()[-600:]),
                    expected="run_member closes its consumer and returns normally",
                    nudge="read the error: what did your code do after should_stop() turned True?")
    for n in numbers:
        gap = runs[n - 1].max_stop_gap()
        if gap > STOP_GAP_S:
            explain(did=did + f", then, {what}, made should_stop() return True for members {numbers} (each "
                    f"returned in time), having timed member {n}'s should_stop() calls all along",
                    saw=f"member {n} went {gap:.1f}s without calling should_stop()", seen_in="the clock",
                    expected=f"should_stop() checked at least once a second, even when no message arrives (at most "
                    f"{STOP_GAP_S:.1f}s apart, with room for a busy machine)",
                    nudge="a stop that falls into such a gap waits for it to end. How long can one poll() call "
                    "wait when no message arrives?")


def test_each_partition_has_one_owner(kafka, impl_path, tmp_path):
    """Two members split a 6-partition topic that already holds messages; a third joins mid-run and gets a share."""
    partitions = 6
    topic = kafka.create_topic(partitions=partitions)
    group = kafka.unique("group")
    ends = produce_per_partition(kafka, topic, partitions, 10)
    runs = start_members(impl_path, tmp_path, kafka, topic, group, 2)
    did = (f"wrote 10 messages to each partition of a {partitions}-partition topic, started 2 run_member() processes "
           f"with group_id={group!r}, asked the broker to describe the group and watched process()")
    try:
        view = _settle(kafka, runs, group, topic, 2, partitions, did)
        wait_all_processed(runs, ends)
        # The first member to join may start on every partition before the second arrives: only once the
        # group has settled does each partition have its one reader.
        _check_processed(runs, ends, did, view, prefilled=10, one_reader=False)
        runs += start_members(impl_path, tmp_path, kafka, topic, group, 1, first=3)
        did += ", then started a third member with the same group id"
        view = _settle(kafka, runs, group, topic, 3, partitions, did)
        since = dict(ends)
        ends = produce_per_partition(kafka, topic, partitions, 10)
        did += ", waited for the group to settle, wrote 10 more messages to each partition"
        wait_all_processed(runs, ends)
        by_partition = _check_processed(runs, ends, did, view, since=since, prefilled=10)
        late = [n for n in (1, 2, 3) if not any(n in m for m in by_partition.values())]
        if late:
            explain(did=did, saw=f"after the third member joined, members {late} processed nothing ({view.describe()})",
                    expected="every member processes the messages of the partitions the group gave it, including "
                    "a member that joined later and partitions that moved to another member",
                    nudge="the group moves partitions when a member joins; the new assignment reaches your code "
                    "inside poll(). Does every member read what it is given now, not what it had at the start?",
                    seen_in=SEEN)
    finally:
        cleanup(runs)


def test_every_message_processed_once(kafka, impl_path, tmp_path):
    """Three members share the work exactly once; busy members asked to stop return promptly and leave the group."""
    partitions, members, per_partition = 6, 3, 20
    topic = kafka.create_topic(partitions=partitions)
    group = kafka.unique("group")
    runs = start_members(impl_path, tmp_path, kafka, topic, group, members, eof=False)
    try:
        settled, view = wait_for_group(kafka, runs, group, topic, members, partitions)
        # Even when the group never formed, go on: what the members processed explains why.
        ends = produce_per_partition(kafka, topic, partitions, per_partition)
        did = (f"started {members} members of group {group!r}, waited for the group to settle"
               + ("" if settled else f" (it had not after {GROUP_DEADLINE_S:.0f}s)")
               + f", wrote {per_partition} messages to each of the {partitions} partitions ({sum(ends.values())} in "
               "all), and watched process()")
        wait_all_processed(runs, ends)
        _check_processed(runs, ends, did, view)
        if not settled:
            _explain_unsettled(did, view, members, partitions)
        busy = [n for n, pairs in processed(runs).items() if pairs]
        if len(busy) != members:
            explain(did=did, saw=f"only members {busy} processed anything ({view.describe()})",
                    expected=f"all {members} members process the messages of the partitions they own",
                    nudge="a group scales out only if every member reads what it was assigned.", seen_in=SEEN)
        with Trickle(kafka, topic, partitions):
            did += ", then kept new messages arriving on every partition"
            _check_stops(runs, [1], stop_timed(runs[:1]), did, STOP_LIMIT_S, "while it was busy")
            took, view = wait_members(kafka, group, topic, members - 1, LEAVE_LIMIT_S)
            if took is None:
                explain(did=did + ", then stopped member 1 (its run_member returned)",
                        saw=f"{LEAVE_LIMIT_S:.0f}s later the group still had {len(view.members)} members "
                        f"({view.describe()})",
                        expected=f"a group of {members - 1} at once: a member that closes its consumer leaves the "
                        "group, and the others take over its partitions without waiting for its session to time out",
                        nudge="what does your run_member do with its consumer before it returns?")
            did += ", stopped member 1"
            _check_stops(runs, [2, 3], stop_timed(runs[1:]), did, STOP_LIMIT_S, "while they were busy too")
    finally:
        cleanup(runs)


def test_extra_members_stay_idle(kafka, impl_path, tmp_path):
    """More members than partitions: the extras own and process nothing; a fenced member ends; idle ones stop."""
    partitions, members, per_partition = 2, 4, 20
    topic = kafka.create_topic(partitions=partitions)
    group = kafka.unique("group")
    runs = start_members(impl_path, tmp_path, kafka, topic, group, members, static_as=0)
    did = (f"started {members} members of group {group!r} (each with a static group.instance.id) on a "
           f"{partitions}-partition topic and asked the broker to describe the group")
    try:
        settled, view = wait_for_group(kafka, runs, group, topic, members, partitions)
        if not settled:
            _explain_unsettled(did, view, members, partitions)
        owning = [m for m, parts in view.members if parts]
        if len(owning) != partitions or any(len(parts) != 1 for m, parts in view.members if parts):
            explain(did=did, saw=view.describe(),
                    expected=f"{partitions} members owning one partition each and {members - partitions} idle members",
                    nudge="a partition is never split between members of one group.")
        ends = produce_per_partition(kafka, topic, partitions, per_partition)
        did += f", then wrote {sum(ends.values())} messages and watched process()"
        wait_all_processed(runs, ends)
        _check_processed(runs, ends, did, view)
        busy = {n: len(pairs) for n, pairs in processed(runs).items() if pairs}
        if len(busy) != partitions:
            explain(did=did, saw=f"messages processed per member: {busy or 'none'} ({view.describe()})",
                    expected=f"exactly {partitions} members process the messages and the {members - partitions} "
                    "extra members process none",
                    nudge="members beyond the partition count get no partition: they are standbys. Does every "
                    "member read only what the group assigned to it?", seen_in=SEEN)
        did += (", then joined the group from the check with member 1's group.instance.id: that takes member 1's "
                "place and the group fences member 1")
        fencer = kafka.consumer(group=group, **{"group.instance.id": f"{group}-member-1", **MEMBER_CONFIG})
        fencer.subscribe([topic])
        deadline = time.monotonic() + FENCE_LIMIT_S
        while runs[0].proc.poll() is None and time.monotonic() < deadline:
            fencer.poll(0.05)
        code = runs[0].proc.poll()
        if code is None or not runs[0].error():
            explain(did=did, saw=f"member 1 was still running {FENCE_LIMIT_S:.0f}s later" if code is None else
                    f"member 1 returned normally (exit code {code}) without an exception",
                    expected="the fenced member to end with an exception: it is a zombie, no longer in the group",
                    nudge="poll() reports a fatal error as an event whose msg.error().code() is KafkaError._FATAL "
                    "(its fatal() flag is not set). Fatal means this consumer cannot go on: raise it.")
        # The others have had nothing to read for a while: a long poll() blocks now, should_stop() or not.
        _check_stops(runs, [2, 3, 4], stop_timed(runs[1:]), did, STOP_LIMIT_S, "with nothing more to read")
    finally:
        cleanup(runs)
