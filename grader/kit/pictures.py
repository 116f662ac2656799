"""Pictures: structured evidence a check attaches to its failure, beside the text (never instead of it).

    from grader.kit import pictures
    pictures.attach(pictures.offset_bars("committed offsets after the kill", [
        pictures.bar(0, end=10, committed=6, expected=7, processed=[0, 1, 2, 3, 4, 5, 6], crash=6)]))
    explain(did=..., saw=..., expected=...)   # the text stays the verdict

Four kinds: *offsets* (per partition: log start, what was processed once / twice / never, committed
offset, expected committed offset, end offset, crash point), *lanes* (per partition, records in offset
order with their key or id and a mark: missing, duplicate, out-of-order), *timeline* (the check's
actions beside what the broker recorded) and *table* (expected vs seen).

A picture is plain data (dicts of str / int / bool / None): it crosses the judge's verdict pipe as JSON
and the runner checks it again with `validate` before any renderer sees it. Pictures live in the judge
process only, so learner code (in the learner host) can never attach one.
"""

from __future__ import annotations

import warnings

from grader.picture_data import MAX_TEXT, PictureError, validate

__all__ = ["PictureError", "attach", "bar", "event", "lane_record", "lanes", "offset_bars", "table", "take",
           "timeline", "validate"]
_PENDING: list[dict] = []


# ---------------------------------------------------------------------- building


def bar(partition: int, end: int, committed: int | None = None, expected: int | None = None,
        processed=(), log_start: int = 0, start: int | None = None, crash: int | None = None,
        window: int = 40, focus: int | None = None) -> dict:
    """One partition of an offset-bar picture. processed: the offsets process() received, in order, with
    repeats (a repeat is drawn as a duplicate); start: where this run was due to begin (None: log start).

    A long partition is drawn as a window of `window` offsets ending just past the interesting point
    (the committed, expected, crash or `focus` offset, else the last processed); the true log start and
    end stay in the picture, so the renderers can say what is left out. focus: an offset the window must
    show although nothing marks it (e.g. the first one processed twice)."""
    counts: dict[int, int] = {}
    for offset in processed:
        counts[int(offset)] = counts.get(int(offset), 0) + 1
    marks = [o for o in (committed, expected, crash, focus) if o is not None] or list(counts) or [end]
    # Never more than `window` offsets: when the marks lie further apart, the latest ones are shown (the text
    # beside the bar still gives every number).
    shown_end = min(int(end), max(marks) + 4)
    shown_start = max(int(log_start), min(min(marks) - 4, shown_end - window))
    if shown_end - shown_start > window:
        shown_start = shown_end - window
    shown_end = min(int(end), max(shown_end, shown_start + window))
    return {"partition": int(partition), "log_start": shown_start, "end": shown_end,
            "first": int(log_start), "last": int(end),
            "start": None if start is None else int(start), "committed": committed, "expected": expected,
            "crash": crash, "counts": {str(o): n for o, n in sorted(counts.items()) if shown_start <= o < shown_end}}


def _title(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def offset_bars(title: str, partitions: list[dict], unread: str = "not processed",
                before: str = "before this run's start") -> dict:
    """unread, before: what a pale and a grey square mean in this picture (its legend says so)."""
    return validate({"kind": "offsets", "title": _title(title), "partitions": partitions,
                     "words": {"unread": unread, "before": before}})


def lane_record(offset: int, label: str = "", mark: str = "") -> dict:
    return {"offset": int(offset), "label": str(label)[:MAX_TEXT], "mark": mark}


def lanes(title: str, partitions: dict[int, list[dict]], legend: str = "") -> dict:
    """partitions: {partition: [lane_record(...), ...]} in offset order."""
    parts = [{"partition": int(p), "records": list(rs)} for p, rs in sorted(partitions.items())]
    return validate({"kind": "lanes", "title": _title(title), "legend": legend, "partitions": parts})


def event(who: str, text: str, mark: str = "") -> dict:
    """One step of a timeline: who is "check" (what the check did) or "broker" (what it recorded)."""
    return {"who": who, "text": str(text)[:MAX_TEXT], "mark": mark}


def timeline(title: str, events: list[dict]) -> dict:
    return validate({"kind": "timeline", "title": _title(title), "events": list(events)})


def table(title: str, columns: list[str], rows: list[list], bad_rows: list[int] = ()) -> dict:
    """Expected vs seen: bad_rows are the indexes of rows that differ (drawn marked)."""
    return validate({"kind": "table", "title": _title(title), "columns": [str(c) for c in columns],
                     "rows": [[_cell(v) for v in row] for row in rows], "bad_rows": [int(i) for i in bad_rows]})


def attach(picture: dict) -> None:
    """Show this picture under the current check's failure (if it fails; a passing check drops it).

    Never raises: a picture adds to the text, so a malformed one must not turn the check's own failure
    into another. It is dropped with a warning (pytest lists it; tests/test_pictures.py validates the
    pictures of every kind the checks build)."""
    try:
        _PENDING.append(validate(picture))
    except PictureError as exc:
        warnings.warn(f"picture dropped: {exc}", stacklevel=2)


def take() -> list[dict]:
    """The pictures attached since the last take (the plugin calls this once per check)."""
    out = list(_PENDING)
    _PENDING.clear()
    return out


def _cell(value) -> str:
    return "none" if value is None else str(value)[:MAX_TEXT]
