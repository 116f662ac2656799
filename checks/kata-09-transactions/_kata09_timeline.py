"""kata-09's timeline: what the check did (start an instance, hold or kill it mid-transaction, start a
second one with the same transactional.id, make process() raise) beside what the broker recorded at
that moment (open transactions on the output, the group's committed offsets, what read_committed sees).

Transactions are about order in time: whether the output became visible before, with or after the
offsets, and whether the new instance's init_transactions() ended the old one's transaction. The check's
text says what went wrong; the timeline shows when. One timeline per check, attached when the check ends
(a passing check's pictures are dropped), so every failure of the check carries it.
"""

from __future__ import annotations

import functools
import warnings

from _kata09_support import end_offsets

from grader.kit import pictures


class Steps:
    def __init__(self):
        self.events: list[dict] = []

    def did(self, text: str, mark: str = "") -> None:
        self.events.append(pictures.event("check", text, mark))

    def saw(self, text: str, mark: str = "") -> None:
        self.events.append(pictures.event("broker", text, mark))

    def yes_no(self, question: str, answer: bool, bad: bool) -> None:
        """A yes/no observation, marked when the answer is `bad`."""
        self.saw(f"{question}: {'yes' if answer else 'no'}", ("extra" if bad else "missing") if answer == bad else "")

    def timeout(self, timeout_ms: int | None, most: int) -> None:
        self.saw("transaction.timeout.ms registered for the transactional.id: "
                 + ("not found" if timeout_ms is None else str(timeout_ms)),
                 "extra" if timeout_ms is not None and timeout_ms > most else "")

    def fenced(self, held: list[int], inited: bool) -> None:
        """Whether the first instance's transaction was over once the second one's init_transactions() returned."""
        self.saw(("after the second's init_transactions() returned: " if inited else "")
                 + (f"first instance's transaction still open on output {parts(held)}" if held
                    else "the first instance's transaction is over"), "extra" if held else "")

    def offsets(self, label: str, seen: dict, want: dict | None = None) -> None:
        """The group's committed offsets on the input, marked when they differ from what they should be."""
        differs = want is not None and seen != want
        self.saw(f"{label}: {_short(seen)}" + (f" (should be {_short(want)})" if differs else ""),
                 "extra" if differs else "")

    def output(self, kafka, topic: str, label: str, expect_open: bool | None = None) -> list[int]:
        """Which output partitions an open transaction holds (last stable offset behind the high watermark);
        marked when that is not what `expect_open` says it should be."""
        try:
            stable, high = end_offsets(kafka, topic, True), end_offsets(kafka, topic, False)
        except Exception as exc:  # a picture must never replace the check's own failure
            self.saw(f"{label}: could not be read ({type(exc).__name__})")
            return []
        held = sorted(part for part in high if stable.get(part, 0) < high[part])
        text = f"transaction open on output {parts(held)}" if held else "no transaction open on output"
        wrong = expect_open is not None and bool(held) != expect_open
        self.saw(f"{label}: {text}", "extra" if wrong and held else "missing" if wrong else "")
        return held


steps = Steps()


def parts(partitions: list[int]) -> str:
    return ", ".join(f"p{p}" for p in partitions) or "none"


def _short(offsets: dict) -> str:
    return ", ".join(f"p{p} {o}" for p, o in sorted(offsets.items())) or "none"


def with_timeline(title: str):
    """Give the check a fresh `steps` and attach them as a timeline when it ends, however it ends."""
    def wrap(check):
        @functools.wraps(check)  # pytest reads the fixtures from the wrapped signature
        def run(*args, **kwargs):
            steps.events = []
            try:
                return check(*args, **kwargs)
            finally:
                events = steps.events
                if len(events) > 60:  # the picture's limit: the start and the end matter most
                    gap = pictures.event("check", f"… {len(events) - 59} steps left out …")
                    events = events[:20] + [gap] + events[-39:]
                try:  # a picture must never replace the check's own failure
                    if events:
                        pictures.attach(pictures.timeline(title, events))
                except Exception as exc:
                    warnings.warn(f"picture dropped: {type(exc).__name__}: {exc}", stacklevel=2)
        return run
    return wrap
