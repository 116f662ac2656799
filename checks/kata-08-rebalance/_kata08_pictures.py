"""Pictures for the kata-08 checks: a timeline of what the check did to the group (joins, stops, kills,
freezes) beside what the broker recorded at each step (who owned which partitions, the committed offsets),
and a table of the messages that were lost or processed twice, with the members that processed them.

A rebalance failure is about order in time: the committed offset at the moment a partition moved decides
what its next owner repeats or skips. The check's text says what went wrong; the timeline shows when.
"""

from __future__ import annotations

import functools
import warnings

from _kata08_support import committed_offsets

from grader.kit import pictures

ROWS_SHOWN = 16  # runs of lost or repeated messages in the table: enough to see the pattern


def never_raises(draw):
    """Pictures are drawn in the checks' `finally`: an error there must not replace the check's own failure."""
    @functools.wraps(draw)
    def run(*args, **kwargs):
        try:
            draw(*args, **kwargs)
        except Exception as exc:
            warnings.warn(f"picture dropped: {type(exc).__name__}: {exc}", stacklevel=2)
    return run


class Timeline:
    """The check's actions and the broker's records, in the order they happened. Attached when the check
    ends (a passing check's pictures are dropped), so every failure of the check carries it."""

    def __init__(self, kafka, group: str, topic: str, members: tuple[str, ...] = ("A", "B")):
        self.kafka, self.group, self.topic = kafka, group, topic
        self.events: list = []  # events, and (state, [(member id, partitions)]) drawn once names are known
        self.members = members
        self.names: dict[str, str] = {}  # member id -> A, B, C: from what the check did (who joined, who is left)

    def did(self, text: str, mark: str = "") -> None:
        self.events.append(pictures.event("check", text, mark))

    def saw(self, text: str, mark: str = "") -> None:
        self.events.append(pictures.event("broker", text, mark))

    def owners(self, view, joined: str = "", remaining: str = "") -> None:
        """Who owns which partitions, as the broker's group description says. The broker knows members by id
        only; the check knows who just joined (the one new id) or who is left (the only member)."""
        if view.error or not view.members:
            self.saw(view.describe())
            return
        ids = [(m, sorted(parts)) for m, _, parts in view.members]
        new = [m for m, _ in ids if m not in self.names]
        if joined and len(new) == 1:
            self.names[new[0]] = joined
        if remaining and len(ids) == 1:
            self.names[ids[0][0]] = remaining
        self.events.append((view.state, ids))

    def _named(self, state: str, ids: list) -> dict:
        """An owners step in words; an id the check cannot name yet takes the one name of the run left over."""
        unnamed = [m for m, _ in ids if m not in self.names]
        left = [n for n in self.members if n not in {self.names.get(m) for m, _ in ids}]
        if len(unnamed) == 1 and len(left) == 1:
            self.names.setdefault(unnamed[0], left[0])
        shown = ", ".join(f"{self.names.get(m, 'member …' + m[-4:])} owns {parts}" for m, parts in
                          sorted(ids, key=lambda i: self.names.get(i[0], "~")))
        return pictures.event("broker", f"{state}: {shown}")

    def committed(self, label: str = "committed offsets", expect: dict | None = None) -> dict:
        """The group's committed offsets now; marked when they differ from `expect` (the partitions' ends)."""
        try:
            offsets = committed_offsets(self.kafka, self.group, self.topic)
        except Exception as exc:  # a picture must never replace the check's own failure
            self.saw(f"{label}: could not be read ({type(exc).__name__})")
            return {}
        self.offsets(label, offsets, expect)
        return offsets

    def offsets(self, label: str, offsets: dict, expect: dict | None = None) -> None:
        self.saw(f"{label}: " + ", ".join(f"p{p} {o}" for p, o in sorted(offsets.items())),
                 "missing" if expect is not None and offsets != expect else "")

    @never_raises
    def attach(self, title: str) -> None:
        events = [self._named(*e) if isinstance(e, tuple) else e for e in self.events]
        if len(events) > 60:  # the picture's limit: the start and the end matter most
            events = events[:20] + [pictures.event("check", f"… {len(events) - 59} steps left out …")] + events[-39:]
        pictures.attach(pictures.timeline(title, events))


@never_raises
def attach_repeats(title: str, missing, dupes, who) -> None:
    """A table of the lost and repeated messages: per partition, each run of consecutive offsets that the
    same members processed in the same order ("A > A > B": A twice, then B after a handover), or nobody."""
    runs: list[list] = []
    for p, o in sorted(set(missing) | set(dupes)):
        path = " > ".join(who.get((p, o), [])) or "nobody (lost)"
        last = runs[-1] if runs else None
        if last and last[0] == p and last[2] == o - 1 and last[3] == path:
            last[2] = o
        else:
            runs.append([p, o, o, path])
    if not runs:
        return
    shown = runs[:ROWS_SHOWN]
    rows = [[f"p{p}", f"{a}" if a == b else f"{a}-{b}", path, str(path.count(">") + 1 if who.get((p, a)) else 0)]
            for p, a, b, path in shown]
    if len(runs) > len(shown):
        rows.append(["…", f"{len(runs) - len(shown)} more runs", "", ""])
    pictures.attach(pictures.table(title, ["partition", "offsets", "processed by, in order", "times"], rows,
                                   bad_rows=list(range(len(shown)))))


@never_raises
def attach_bars(title: str, members, committed: dict, held: dict | None, ends: dict) -> None:
    """Per partition, how often the members processed each offset (a digit: more than once), the committed
    offset C the partition's next owner started from, and X where the check killed a member mid-process()."""
    counts: dict[int, list[int]] = {}
    for m in members:
        for p, o in m.records():
            counts.setdefault(p, []).append(o)
    bars = []
    for p in sorted(committed):
        done = counts.get(p, [])
        c = committed[p] if isinstance(committed[p], int) else None
        crash = held["offset"] if held and held.get("partition") == p else None
        # The partition's end once the stream stopped; before that, just past what the picture holds.
        end = ends.get(p) or max(done + [c or 0, crash or 0]) + 1
        # The window shows the first repeat: where the handover's committed offset sent the next owner.
        repeats = sorted(o for o in set(done) if done.count(o) > 1)
        bars.append(pictures.bar(p, end=end, committed=c, processed=done, crash=crash,
                                 focus=repeats[0] if repeats else None))
    pictures.attach(pictures.offset_bars(title, bars, unread="not processed by anyone"))
