"""The self-contained HTML progress report (jinja2, autoescaped, inline SVG chart)."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import jinja2

from grader import __version__
from grader.catalog import Course


def render(course: Course, data: dict, rows: list[dict], run_pages: dict[str, Path] | None = None) -> str:
    """run_pages: kata id -> the page of the learner's last run of it (linked from the kata's row)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    # A label is wrapped onto as many lines as it needs, never cut off.
    env.filters["wrap"] = lambda text, width=70: textwrap.wrap(str(text), width) or [""]
    history = []
    for kata in course.katas:
        for event in data["katas"].get(kata.id, {}).get("history", []):
            history.append({"kata": kata.id, "title": kata.title, **event})
    history.sort(key=lambda e: e["at"], reverse=True)
    return env.get_template("progress.html.j2").render(
        course=course, rows=rows, history=history[:200], katas=course.katas, data=data,
        timelines={k.id: _timeline(data["katas"].get(k.id, {})) for k in course.katas},
        pages={kata: path.resolve().as_uri() for kata, path in (run_pages or {}).items()},
        generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"), version=__version__)


def _timeline(entry: dict) -> list[dict]:
    """A kata's attempts and hints in time order: {"at", "kind" (attempt|hint), "status", "label"}."""
    steps = [{"at": h["at"], "kind": "attempt", "status": h["status"],
              "label": f"{h['at']}: {h['status']}, {h.get('passed', 0)}/{h.get('total', 0)} checks"}
             for h in entry.get("history", [])]
    steps += [{"at": h["at"], "kind": "hint", "status": "hint", "label": f"{h['at']}: hint {h['n']} revealed"}
              for h in entry.get("hint_log", [])]
    return sorted(steps, key=lambda s: s["at"])[-40:]
