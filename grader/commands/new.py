"""`grade new`: scaffold a kata an instructor then makes their own."""

from __future__ import annotations

import click

from grader import console, scaffold
from grader.commands.common import course_option, open_course, refuse_in_release


@click.command("new")
@click.argument("slug")
@click.option("--checklist", required=True, help="The checklist (or pattern) item id from katas/course.yaml.")
@click.option("--title", help="One-line title (default: from the slug).")
@click.option("--id", "kata_id", help="Kata id such as kata-42 (default: the next free number).")
@course_option
def new_command(slug, checklist, title, kata_id, course_dir):
    """Scaffold a kata: kata.yaml, README, stub, solution, hidden checks, a known-bad fixture."""
    course = open_course(course_dir)
    refuse_in_release(course, "`grade new`",
                      "instructors add katas in the course repository this release was made from, then run "
                      "`grade release` again.")
    plan = scaffold.plan(course, slug, checklist, title, kata_id)
    todo = scaffold.write(course, plan)
    root = course.root
    for path in plan.files:
        console.out.print(f"  created {path.relative_to(root)}")
    console.out.print(f"Registered {plan.folder} in katas/course.yaml." if not todo else f"Next: {todo[0]}.")
    console.out.print(
        "The scaffold is a small working example (produce a greeting); it validates as it is.\nNext:\n"
        f"  1. grade validate {plan.kata_id}              # the example passes validation\n"
        f"  2. edit katas/{plan.folder}/ (README, stub), solutions/{plan.folder}/, checks/{plan.folder}/\n"
        f"  3. grade validate {plan.kata_id}              # solution passes, stub and known-bad fail\n"
        "  Guide: docs/authoring.md")
