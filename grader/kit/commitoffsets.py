"""Topics of numbered records and the group's committed offsets, for the commit katas (see
grader/kit/commit.py): every helper takes the partition layout as data."""

from __future__ import annotations

import json
import time

from confluent_kafka import KafkaException, TopicPartition

Offsets = dict[int, "int | None"]


# ---------------------------------------------------------------------- the topic


def value_of(p: int, o: int) -> str:
    # Not ASCII, and different for every record: process() must get each record unchanged.
    return json.dumps({"p": p, "o": o, "note": f"naïve café №{o}"}, ensure_ascii=False)


def make_topic(kafka, counts: list[int]) -> tuple[str, dict[int, int]]:
    """A topic with counts[p] records in partition p; returns it and each partition's end offset."""
    topic = kafka.create_topic(partitions=len(counts))
    producer = kafka.producer()
    for p, n in enumerate(counts):
        for o in range(n):
            key = None if o % 4 == 3 else f"key-{o % 3}"  # colliding keys, and some records without one
            producer.produce(topic, key=key, value=value_of(p, o).encode(), partition=p)
    if producer.flush(30):
        raise KafkaException("the check could not write its own test records")
    return topic, dict(enumerate(counts))


def precommit(kafka, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for the group before the learner's consumer ever runs (a group with history)."""
    consumer = kafka.consumer(group=group)
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)


def records_between(start: Offsets, ends: dict[int, int]) -> set[tuple[int, int]]:
    return {(p, o) for p, end in ends.items() for o in range(start.get(p) or 0, end)}


def total(ends: dict[int, int]) -> int:
    return sum(ends.values())


# ---------------------------------------------------------------------- committed offsets


class Committed:
    """The group's committed offsets, fetched from the broker by a consumer that never joins the group."""

    def __init__(self, kafka, group: str, topic: str, partitions: int):
        self.consumer = kafka.consumer(group=group)
        self.topic, self.partitions = topic, partitions

    def read(self) -> Offsets:
        for attempt in range(20):
            try:
                tps = self.consumer.committed([TopicPartition(self.topic, p) for p in range(self.partitions)],
                                              timeout=10)
                return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in tps}
            except KafkaException:
                if attempt == 19:
                    raise
                time.sleep(0.2)
        return {}


def expected_commits(before: Offsets, records: list[tuple[int, int]], not_committed=None) -> Offsets:
    """What the group must have committed after `records` were processed, each committed right after
    its process() returned: the last processed offset + 1 per partition; `before` where nothing was
    processed; for `not_committed` (the record whose commit a crash prevented) its own offset."""
    out = dict(before)
    for p, o in records:
        out[p] = o + 1
    if not_committed is not None:
        p, o = not_committed
        out[p] = o if (o > (before.get(p) or 0)) else before.get(p)
    return out


def show(offsets: dict) -> str:
    return ", ".join(f"p{p}: {'none' if off is None else off}" for p, off in sorted(offsets.items()))


def show_records(records) -> str:
    items = sorted(records)
    text = ", ".join(f"p{p}@{o}" for p, o in items[:6])
    return text + (f" … ({len(items)} in all)" if len(items) > 6 else "")


def differ(got: Offsets, want: Offsets) -> list[int]:
    return [p for p in sorted(want) if (got.get(p) or 0) != (want[p] or 0)]


def direction(got: Offsets, want: Offsets) -> str:
    """In words, how the committed offsets differ from the expected ones: the likely cause."""
    wrong = differ(got, want)
    if wrong and all((got.get(p) or 0) == (want[p] or 0) - 1 for p in wrong):
        return ("each differing partition is exactly one behind: a committed offset names the next record to read "
                "(after processing offset 41, commit 42). ")
    if any((got.get(p) or 0) > (want[p] or 0) for p in wrong):
        return ("some partitions are committed past what they should be: something committed records before they "
                "were done (a commit that comes too early, librdkafka's auto-commit timer, the wrong partition). ")
    return ("some records are not committed (or were not yet when the check looked): every record needs its own "
            "synchronous commit, for its own partition, before the next record is taken. ")


def commit_picture(title: str, ends: dict[int, int], start: Offsets, records, crash=None, got: Offsets | None = None,
                   want: Offsets | None = None) -> dict:
    """An offset-bar picture (grader/kit/pictures.py) of a commit check: per partition what process() received
    (repeats show), where the run was due to start, the crash record, and the committed vs expected offsets."""
    from grader.kit import pictures

    return pictures.offset_bars(title, [
        pictures.bar(p, end=end, processed=[o for q, o in records if q == p], start=start.get(p),
                     committed=got.get(p) if got is not None else None,
                     expected=want.get(p) if want is not None else None,
                     crash=crash[1] if crash is not None and crash[0] == p else None)
        for p, end in sorted(ends.items())])
