"""How kata-11's checks compare what catch_up did with what it should have done (not shown to learners)."""

import json
from pathlib import Path

from _kata11_support import diff

from grader.checklib import explain


def expect_balances(balances, want: dict, did: str, nudge: str) -> None:
    if balances != want:
        missing = sorted(set(want) - set(balances)) if isinstance(balances, dict) else []
        zero = [a for a in missing if want[a] == 0]
        explain(did=did, saw=f"balances differ: {diff(balances, want)}",
                expected=f"the balances of a replay of every event in order ({len(want)} accounts, those at 0 "
                "included)", seen_in="your function's return value",
                nudge=(f"{zero[0]} ends at 0 (its only event is a declined withdrawal, or its history sums to 0): "
                       "every account that appears in the events is returned. " if zero else "") + nudge)


def expect_all_records(seen: list, ends: dict[int, int], did: str, nudge: str, start=None) -> None:
    """on_event saw every record from start (default 0) to the end, once each, in offset order per partition."""
    start = start or {}
    want = {(p, o) for p, end in ends.items() for o in range(start.get(p, 0), end)}
    got = set(seen)
    if len(seen) != len(got):
        dupes = sorted({x for x in seen if seen.count(x) > 1})
        explain(did=did, saw=f"on_event was called twice for the same record, e.g. (partition, offset) {dupes[:3]}",
                expected="each record applied exactly once", seen_in="the calls of on_event", nudge=nudge)
    late = sorted(x for x in got if x[1] >= ends.get(x[0], 0))
    if late:
        explain(did=did, saw=f"on_event saw records appended after catch_up started: (partition, offset) {late[:4]} "
                f"(the ends were {ends} when it started)", expected="catch_up to stop at those ends",
                seen_in="the calls of on_event",
                nudge="'now' is fixed when the call starts: the high watermark of each partition, read before "
                "the first poll. Waiting until nothing arrives, or re-reading the watermarks, never stops while "
                "the log grows.")
    if got != want:
        missing = sorted(want - got)
        early = sorted(got - want)
        explain(did=did, saw=f"on_event saw {len(got)} records where {len(want)} were expected; "
                + (f"never (partition, offset) {missing[:4]}" if missing else f"also {early[:4]}"),
                expected="every record of every partition, from " + ("the snapshot's offsets" if start else
                                                                     "offset 0") + " to the end",
                seen_in="the calls of on_event", nudge=nudge)
    for p in ends:
        offsets = [o for q, o in seen if q == p]
        if offsets != sorted(offsets):
            explain(did=did, saw=f"partition {p}'s records applied in the order {offsets[:8]}",
                    expected="each partition's records applied in offset order", seen_in="the calls of on_event",
                    nudge="a fold depends on order: Kafka's order is the offset order within a partition.")


def read_snapshot(path: Path, did: str) -> tuple[dict, dict]:
    try:
        snapshot = json.loads(path.read_text(encoding="utf-8"))
        return {int(p): o for p, o in snapshot["offsets"].items()}, snapshot["balances"]
    except FileNotFoundError:
        explain(did=did, saw="no snapshot file", expected="catch_up to write it", seen_in="the snapshot file")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        explain(did=did, saw=f"a file the check could not read as the README's format ({type(exc).__name__}: "
                f"{exc}): {path.read_text(errors='replace')[:120]!r}",
                expected='{"balances": {"acc-...": cents}, "offsets": {"<partition>": next_offset}}',
                seen_in="the snapshot file")
    return {}, {}
