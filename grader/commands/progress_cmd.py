"""`grade progress`: mastery per checklist item, what is next, an HTML report, reset."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from grader import console, html_report
from grader.commands.common import course_option, open_course
from grader.progress import MASTERED, NOT_STARTED, ProgressStore, mastery, next_kata

STATE_STYLE = {MASTERED: "green", NOT_STARTED: "dim", "in progress": "yellow"}


@click.command("progress")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML report with a mastery chart.")
@click.option("--json", "as_json", is_flag=True, help="Print progress and mastery as JSON.")
@click.option("--reset", "reset", is_flag=True, help="Forget your progress (all katas, or the KATA given).")
@click.argument("kata_name", required=False, metavar="[KATA]")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (with --reset).")
@course_option
def progress_command(html_file, as_json, reset, kata_name, yes, course_dir):
    """Show mastery of the course checklist and what to do next."""
    course = open_course(course_dir)
    store = ProgressStore(course)
    if reset:
        kata = course.find(kata_name) if kata_name else None
        what = f"your progress on {kata.id}" if kata else "all your progress in this course"
        if not yes and not click.confirm(f"Forget {what}? Your code is not touched.", default=False):
            console.out.print("Nothing was changed.")
            return
        store.reset(kata)
        console.out.print(f"Forgot {what}.")
        return
    data = store.load()
    if store.note.message:
        console.err.print(f"[yellow]{escape(store.note.message)}[/yellow]")
    rows = mastery(course, data)
    upcoming = next_kata(course, data)
    if as_json:
        click.echo(json.dumps({"course": course.title, "mastery": rows, "katas": data["katas"],
                               "next": upcoming.id if upcoming else None}, indent=2))
        return
    if html_file:
        pages = {k.id: store.run_page_path(k) for k in course.katas if store.run_page_path(k).is_file()}
        html_file.write_text(html_report.render(course, data, rows, pages), encoding="utf-8")
        console.out.print(f"Wrote {html_file}. Open it in a browser.")
        return
    table = Table(title=f"{course.title}: mastery")
    for column in ("item", "katas passed", "state"):
        table.add_column(column)
    for row in rows:
        if not row["katas"] and row["kind"] == "pattern":
            continue
        style = STATE_STYLE.get(row["state"], "")
        table.add_row(escape(row["title"]), f"{row['passed']}/{len(row['katas'])}",
                      f"[{style}]{row['state']}[/{style}]" if style else row["state"])
    console.out.print(table)
    done = sum(r["state"] == MASTERED for r in rows if r["kind"] == "checklist")
    console.out.print(f"{done} of {len(course.checklist)} checklist items mastered.")
    if upcoming:
        console.out.print(f"Next: `grade {upcoming.id}` ({escape(upcoming.title)}).")
    else:
        console.out.print("Next: every kata is passed — `grade progress --html report.html` for the record.")
