"""`grade list`: the katas in course order."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from grader import console
from grader.commands.common import course_option, open_course
from grader.progress import IN_PROGRESS, NOT_STARTED, PASSED, ProgressStore, kata_state, next_kata

STYLE = {PASSED: "green", IN_PROGRESS: "yellow", NOT_STARTED: "dim"}


@click.command("list")
@course_option
def list_command(course_dir):
    """List the katas in course order with their checklist item."""
    course = open_course(course_dir)
    data = ProgressStore(course).load()
    table = Table(title=course.title, show_lines=False)
    for column in ("kata", "status", "title", "checklist item", "difficulty"):
        table.add_column(column)
    for kata in course.katas:
        state = kata_state(data, kata)
        table.add_row(kata.id, f"[{STYLE[state]}]{state}[/{STYLE[state]}]", escape(kata.title),
                      escape(course.item(kata.checklist).title), kata.difficulty)
    console.out.print(table)
    upcoming = next_kata(course, data)
    console.out.print(f"Next: `grade {upcoming.id}`." if upcoming else "Every kata is passed.")
