"""The shape of a picture (grader/kit/pictures.py builds them): plain data of four kinds within size limits.

Checked on both sides of the judge's verdict pipe: when a check attaches one, and again in the runner
before any renderer (terminal, HTML) sees it. No third-party imports: the runner loads this.
"""

from __future__ import annotations

KINDS = ("offsets", "lanes", "timeline", "table")
MARKS = ("", "missing", "duplicate", "out-of-order", "crash", "extra", "split")  # split: a key on 2+ partitions
MAX_PARTITIONS, MAX_CELLS, MAX_ROWS, MAX_TEXT = 16, 200, 60, 120


class PictureError(ValueError):
    """A picture that is not one of the four kinds, or carries something other than plain data."""


def validate(picture) -> dict:
    """The picture, checked to be plain data of a known kind within size limits; PictureError otherwise."""
    if not isinstance(picture, dict) or picture.get("kind") not in KINDS:
        raise PictureError(f"a picture is a dict whose kind is one of {', '.join(KINDS)}, not {picture!r:.80}")
    _text(picture.get("title"), "title")
    kind = picture["kind"]
    if kind == "offsets":
        words = picture.get("words", {})
        if not isinstance(words, dict) or set(words) - {"unread", "before"}:
            raise PictureError("an offset picture's words name what 'unread' and 'before' squares mean")
        for value in words.values():
            _text(value, "words")
        for part in _list(picture.get("partitions"), "partitions", MAX_PARTITIONS):
            for name in ("partition", "log_start", "end"):
                _int(part.get(name), name)
            if not part["log_start"] <= part["end"] <= part["log_start"] + MAX_CELLS:
                raise PictureError(f"an offset bar shows at most {MAX_CELLS} offsets, log_start <= end")
            for name in ("start", "committed", "expected", "crash", "first", "last"):
                _int(part.get(name), name, optional=True)
            counts = part.get("counts")
            if not isinstance(counts, dict) or len(counts) > MAX_CELLS:
                raise PictureError("an offset bar's counts is a dict {offset: times processed}")
            for offset, n in counts.items():
                _int(int(offset) if str(offset).lstrip("-").isdigit() else None, "counts offset")
                _int(n, "counts value")
    elif kind == "lanes":
        _text(picture.get("legend", ""), "legend")
        for part in _list(picture.get("partitions"), "partitions", MAX_PARTITIONS):
            _int(part.get("partition"), "partition")
            for rec in _list(part.get("records"), "records", MAX_CELLS):
                _int(rec.get("offset"), "offset")
                _text(rec.get("label"), "label")
                _mark(rec.get("mark"))
    elif kind == "timeline":
        for step in _list(picture.get("events"), "events", MAX_ROWS):
            if step.get("who") not in ("check", "broker"):
                raise PictureError(f"a timeline event's who is 'check' or 'broker', not {step.get('who')!r:.40}")
            _text(step.get("text"), "text")
            _mark(step.get("mark"))
    else:
        columns = _list(picture.get("columns"), "columns", 8)
        for c in columns:
            _text(c, "column")
        for row in _list(picture.get("rows"), "rows", MAX_ROWS):
            if not isinstance(row, list) or len(row) != len(columns):
                raise PictureError("each table row is a list with one cell per column")
            for c in row:
                _text(c, "cell")
        for i in _list(picture.get("bad_rows", []), "bad_rows", MAX_ROWS):
            _int(i, "bad_rows")
    return picture


def _list(value, name: str, limit: int) -> list:
    if not isinstance(value, list) or len(value) > limit:
        raise PictureError(f"a picture's {name} is a list of at most {limit} items")
    for item in value:
        if not isinstance(item, (dict, list, str, int)):
            raise PictureError(f"a picture's {name} holds plain data only")
    return value


def _int(value, name: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 10**15:
        raise PictureError(f"a picture's {name} is a whole number, not {value!r:.40}")


def _text(value, name: str) -> None:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise PictureError(f"a picture's {name} is text of at most {MAX_TEXT} characters")


def _mark(value) -> None:
    if value not in MARKS:
        raise PictureError(f"a picture's mark is one of {MARKS}, not {value!r:.40}")
