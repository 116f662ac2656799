"""Pictures (grader/picture_data.py) drawn as text under a failure: rich markup lines, at most 100 columns
(96 here, indented by 4 in the report).

Every distinction is made by a character, never by colour alone, so the picture reads the same with
NO_COLOR=1 and in a CI log; `ascii_only` swaps the block characters for ASCII ones when the terminal's
encoding cannot draw them.
"""

from __future__ import annotations

import textwrap

from rich.cells import cell_len
from rich.markup import escape

WIDTH = 96  # the report indents a picture by 4: 100 columns in all
MAX_CELLS = 40  # a bar's cells; its labels take the rest of the 96 columns (kit bars hold 40)

_GLYPHS = {  # state: (unicode, ascii, style)
    "before": ("·", ".", "dim"),
    "once": ("█", "#", "green"),
    "unread": ("░", "-", "dim"),
    "crash": ("X", "X", "bold red"),
}


def render(picture: dict, ascii_only: bool = False) -> list[str]:
    draw = {"offsets": _offsets, "lanes": _lanes, "timeline": _timeline, "table": _table}[picture["kind"]]
    return [f"[bold]{escape(picture['title'])}[/bold]"] + draw(picture, ascii_only)


# ---------------------------------------------------------------------- offset bars


def _cell(state: str, count: int, ascii_only: bool) -> str:
    if state == "repeat":  # the digit is the number of times process() got it: visible without colour
        return f"[bold yellow]{min(count, 9)}[/bold yellow]"
    uni, asc, style = _GLYPHS[state]
    return f"[{style}]{asc if ascii_only else uni}[/{style}]"


def offset_cells(part: dict) -> list[tuple[int, str, int]]:
    """(offset, state, times processed) for each offset the bar shows; state: before, once, repeat,
    unread, crash. Shared with the SVG renderer so both pictures say the same thing."""
    start = part["log_start"] if part["start"] is None else part["start"]
    cells = []
    for offset in range(part["log_start"], part["end"]):
        n = part["counts"].get(str(offset), 0)
        if part["crash"] == offset:
            state = "crash"
        elif n > 1:
            state = "repeat"
        elif n == 1:
            state = "once"
        else:
            state = "before" if offset < start else "unread"
        cells.append((offset, state, n))
    return cells


def _offsets(picture: dict, ascii_only: bool) -> list[str]:
    # The legend names only what this picture shows, in the words its check chose.
    words = {"once": "processed once", "repeat": "2 processed twice (the digit: how often)", "crash": "killed here",
             "unread": "not processed", "before": "before this run's start", **picture.get("words", {})}
    present = {state for part in picture["partitions"] for _, state, _ in offset_cells(part)}
    keys = [k for k in ("once", "repeat", "crash", "unread", "before") if k in present]
    glyph = {k: (v[1] if ascii_only else v[0]) for k, v in _GLYPHS.items()}
    items = [words[k] if k == "repeat" else f"{'X' if k == 'crash' else glyph[k]} {words[k]}" for k in keys]
    lines = [escape("  " + "   ".join(items[i:i + 3])) for i in range(0, len(items), 3)]
    has_e = any(part["expected"] is not None for part in picture["partitions"])
    lines.append(escape("  under the bar: C committed offset (the next record to read)"
                        + (", E what it should be, * both" if has_e else "")))
    for part in picture["partitions"]:
        cells = offset_cells(part)
        shown, more = cells[:MAX_CELLS], len(cells) > MAX_CELLS
        cut_before = part.get("first", part["log_start"]) < part["log_start"]
        cut_after = more or part.get("last", part["end"]) > part["end"]
        ellipsis = "~" if ascii_only else "…"
        bar = "".join(_cell(state, n, ascii_only) for _, state, n in shown) or " (empty) "
        label = f"  p{part['partition']:<3}{part['log_start']:>6}{ellipsis if cut_before else ' '}|"
        committed, expected = part["committed"], part["expected"]
        verdict = ""
        if expected is not None:
            verdict = "   ok" if (committed or 0) == (expected or 0) else "   <- differs"
        tail = (f"|{ellipsis if cut_after else ' '}end {part.get('last', part['end']):<5} "
                f"C {'none' if committed is None else committed}"
                + (f"  E {'none' if expected is None else expected}{verdict}" if has_e else ""))
        style = "bold red" if verdict.endswith("differs") else ""
        tail = f"[{style}]{escape(tail)}[/{style}]" if style else escape(tail)
        lines.append(escape(label) + bar + tail)
        marks = _marker_line(part, len(shown))
        if marks.strip():
            lines.append(" " * len(label) + escape(marks))
    return lines


def _marker_line(part: dict, width: int) -> str:
    """C under the committed offset, E under the expected one (* where they coincide)."""
    row = [" "] * (width + 1)
    for offset, letter in ((part["expected"], "E"), (part["committed"], "C")):
        if offset is None:
            continue
        i = offset - part["log_start"]
        if 0 <= i <= width:
            row[i] = "*" if row[i] not in (" ", letter) else letter
    return "".join(row).rstrip()


# ---------------------------------------------------------------------- lanes, timelines, tables

_MARK_TEXT = {"": "", "missing": "?missing", "duplicate": "x2", "out-of-order": "<order", "crash": "X",
              "extra": "+extra", "split": "split"}


def _lanes(picture: dict, ascii_only: bool) -> list[str]:
    lines = [escape("  " + picture["legend"])] if picture.get("legend") else []
    for part in picture["partitions"]:
        prefix = f"  p{part['partition']:<3}| "
        line, out = prefix, []
        for rec in part["records"]:
            token = f"{rec['offset']}:{rec['label']}" + (f"({_MARK_TEXT[rec['mark']]})" if rec["mark"] else "")
            if cell_len(line) + cell_len(token) + 1 > WIDTH:  # CJK ids take two columns a character
                out.append(line.rstrip())
                line = " " * len(prefix)
            line += token + " "
        out.append(line.rstrip())
        for text in out:  # marked records in red; the mark's words say it without colour
            lines.append(_highlight(text))
    return lines


def _highlight(text: str) -> str:
    out = escape(text)
    for word in _MARK_TEXT.values():
        if word:
            out = out.replace(f"({escape(word)})", f"[bold red]({escape(word)})[/bold red]")
    return out


def _timeline(picture: dict, ascii_only: bool) -> list[str]:
    lines = []
    for i, step in enumerate(picture["events"], 1):
        arrow = ">" if ascii_only else "▶"
        who = f"{arrow} check " if step["who"] == "check" else "  broker"
        mark = f"  [{step['mark']}]" if step["mark"] else ""
        prefix = f"  {i:>2} {who} | "
        # A long step wraps under its own text (never cut: its end is often the point).
        wrapped = textwrap.wrap(step["text"] + mark, WIDTH - len(prefix), break_on_hyphens=False) or [""]
        for n, part in enumerate(wrapped):
            text = (prefix if n == 0 else " " * (len(prefix) - 2) + "| ") + part
            lines.append(f"[bold red]{escape(text)}[/bold red]" if step["mark"] else escape(text))
    return lines


def _table(picture: dict, ascii_only: bool) -> list[str]:
    columns, rows = picture["columns"], picture["rows"]
    widths = [max(len(str(c)) for c in [col] + [r[i] for r in rows]) for i, col in enumerate(columns)]
    while sum(widths) + 3 * len(widths) + 1 > WIDTH and max(widths) > 6:  # narrow the widest column first
        widths[widths.index(max(widths))] -= 1
    bad = set(picture.get("bad_rows", []))

    def row(cells, flag=" "):
        return f"  {flag} " + " | ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=True))

    lines = [escape(row(columns)), escape("    " + "-+-".join("-" * w for w in widths))]
    for i, r in enumerate(rows):
        text = escape(row(r, "x" if i in bad else " "))
        lines.append(f"[bold red]{text}[/bold red]" if i in bad else text)
    return lines
