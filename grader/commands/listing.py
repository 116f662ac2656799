"""`grade list`: the katas in course order."""

from __future__ import annotations

import click
from rich.table import Table

from grader import console
from grader.commands.common import course_option, open_course


@click.command("list")
@course_option
def list_command(course_dir):
    """List the katas in course order with their checklist item."""
    course = open_course(course_dir)
    table = Table(title=course.title, show_lines=False)
    for column in ("kata", "title", "checklist item", "difficulty"):
        table.add_column(column)
    for kata in course.katas:
        table.add_row(kata.id, kata.title, course.item(kata.checklist).title, kata.difficulty)
    console.out.print(table)
    console.out.print("Next: run `grade KATA`, e.g. `grade kata-01`.")
