"""Hidden checks for kata-06 (consumer groups). Never shown to learners.

Every check runs several copies of the learner's run_member() as separate processes with one
group id, asks the broker who owns which partition (AdminClient.describe_consumer_groups), and
compares that with what each member's process() callback actually received.
"""

from _kata06_support import (
    GROUP_DEADLINE_S,
    NO_PROGRESS_GIVE_UP_S,
    check_alive,
    cleanup,
    processed,
    produce_per_partition,
    start_members,
    stop_members,
    tally,
    wait_all_processed,
    wait_for_group,
)

from grader.kit import explain

NO_GROUP_NUDGE = ("a consumer becomes a member of a group only when it subscribes to the topic with that group's "
                  "id; then the group, not your code, decides which partitions it reads.")


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


def test_each_partition_has_one_owner(kafka, impl_path, tmp_path):
    """Three members of one group split a 6-partition topic: every partition has exactly one owner."""
    partitions, members = 6, 3
    topic = kafka.create_topic(partitions=partitions)
    group = kafka.unique("group")
    runs = start_members(impl_path, tmp_path, kafka, topic, group, members)
    did = (f"started {members} run_member() processes with group_id={group!r} on a {partitions}-partition topic, "
           "then asked the broker to describe the group")
    try:
        settled, view = wait_for_group(kafka, runs, group, topic, members, partitions)
        if not settled:
            _explain_unsettled(did, view, members, partitions)
        idle = [m for m, parts in view.members if not parts]
        if idle:
            explain(did=did, saw=view.describe(),
                    expected=f"with {partitions} partitions and {members} members, every member owns some",
                    nudge="the group's assignor spreads partitions over all members that subscribed to the topic.")
    finally:
        cleanup(runs)


def test_every_message_processed_once(kafka, impl_path, tmp_path):
    """The members share the work: each message is processed once in total, by its partition's owner."""
    partitions, members, per_partition = 6, 3, 20
    topic = kafka.create_topic(partitions=partitions)
    group = kafka.unique("group")
    runs = start_members(impl_path, tmp_path, kafka, topic, group, members)
    try:
        settled, view = wait_for_group(kafka, runs, group, topic, members, partitions)
        # Even when the group never formed, go on: what the members processed explains why.
        ends = produce_per_partition(kafka, topic, partitions, per_partition)
        total = sum(ends.values())
        did = (f"started {members} members of group {group!r}, waited for the group to settle"
               + ("" if settled else f" (it had not after {GROUP_DEADLINE_S:.0f}s)")
               + f", wrote {per_partition} messages to each of the {partitions} partitions ({total} in all), "
               "and watched process()")
        wait_all_processed(runs, ends)
        check_alive(runs, did)
        missing, dupes, counts, by_partition = tally(runs, ends)
        if dupes:
            p, o = dupes[0]
            explain(did=did, saw=f"{len(dupes)} of {total} messages were processed more than once (partition {p} "
                    f"offset {o}: {counts[(p, o)]} times); partitions read by several members: "
                    f"{ {p: sorted(m) for p, m in by_partition.items() if len(m) > 1} }",
                    expected="each message processed exactly once in total, by one member",
                    nudge="members of one group split the partitions between them; consumers in different groups "
                    "(or consumers that pick partitions themselves) each read everything.")
        if missing:
            owners = view.owners
            starved = sorted({p for p, _ in missing})
            explain(did=did, saw=f"{len(missing)} of {total} messages were never processed (no progress for "
                    f"{NO_PROGRESS_GIVE_UP_S:.0f}s), on partitions {starved}; the broker had assigned them to "
                    f"{ {p: ['…' + m[-6:] for m in owners.get(p, [])] for p in starved} } ({view.describe()})",
                    expected="every message processed by the member that owns its partition",
                    nudge="a member holds its partitions as long as it stays in the group, whether or not it "
                    "reads them. What does a member have to keep doing for its assignment to take effect?")
        if not settled:
            _explain_unsettled(did, view, members, partitions)
        for p, who in by_partition.items():
            owner = view.owners.get(p, ["?"])[0]
            if len(who) != 1:
                explain(did=did, saw=f"partition {p} was read by members {sorted(who)}",
                        expected=f"only its owner (broker member …{owner[-6:]}) reads it", nudge=NO_GROUP_NUDGE)
        busy = [n for n, pairs in processed(runs).items() if pairs]
        if len(busy) != members:
            explain(did=did, saw=f"only members {busy} processed anything ({view.describe()})",
                    expected=f"all {members} members process the messages of the partitions they own",
                    nudge="a group scales out only if every member reads what it was assigned.")
        stop_members(runs)
        hung = [n for n, run in enumerate(runs, 1) if run.proc.returncode is None or run.proc.returncode < 0]
        failed = [(n, run.error()) for n, run in enumerate(runs, 1) if (run.proc.returncode or 0) > 0]
        if failed:
            n, err = failed[0]
            explain(did=did + ", then made should_stop() return True",
                    saw=f"member {n} ended with an error: "
                    + (f"{err['type']}: {err['message']}" if err else runs[n - 1].output()[-600:]),
                    expected="run_member closes its consumer and returns normally",
                    nudge="read the error: what did your code do after should_stop() turned True?")
        if hung:
            explain(did=did + ", then made should_stop() return True",
                    saw=f"members {hung} did not return within 30s",
                    expected="run_member returns soon after should_stop() turns True, having closed its consumer",
                    nudge="how often does your loop look at should_stop() when no message arrives?")
    finally:
        cleanup(runs)


def test_extra_members_stay_idle(kafka, impl_path, tmp_path):
    """With more members than partitions, the extra members own nothing and process nothing."""
    partitions, members, per_partition = 2, 4, 20
    topic = kafka.create_topic(partitions=partitions)
    group = kafka.unique("group")
    runs = start_members(impl_path, tmp_path, kafka, topic, group, members)
    did = (f"started {members} members of group {group!r} on a {partitions}-partition topic and asked the broker to "
           "describe the group")
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
        total = sum(ends.values())
        did += f", then wrote {total} messages and watched process()"
        wait_all_processed(runs, ends)
        check_alive(runs, did)
        missing, dupes, counts, by_partition = tally(runs, ends)
        busy = {n: len(pairs) for n, pairs in processed(runs).items() if pairs}
        if missing or dupes or len(busy) != partitions:
            explain(did=did, saw=f"{len(missing)} messages never processed, {len(dupes)} processed more than once; "
                    f"messages processed per member: {busy or 'none'} ({view.describe()})",
                    expected=f"exactly {partitions} members process the messages (once each) and the "
                    f"{members - partitions} extra members process none",
                    nudge="members beyond the partition count get no partition: they are standbys. Does every "
                    "member read only what the group assigned to it?")
    finally:
        cleanup(runs)
