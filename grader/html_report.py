"""The self-contained HTML progress report (jinja2, autoescaped, inline SVG chart)."""

from __future__ import annotations

import datetime as dt

import jinja2

from grader import __version__
from grader.catalog import Course


def render(course: Course, data: dict, rows: list[dict]) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    history = []
    for kata in course.katas:
        for event in data["katas"].get(kata.id, {}).get("history", []):
            history.append({"kata": kata.id, "title": kata.title, **event})
    history.sort(key=lambda e: e["at"], reverse=True)
    return env.get_template("progress.html.j2").render(
        course=course, rows=rows, history=history[:200], katas=course.katas, data=data,
        generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"), version=__version__)
