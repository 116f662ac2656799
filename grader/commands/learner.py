"""Getting unstuck and moving on: `grade hint`, `grade solution`, `grade next`."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.syntax import Syntax

from grader import console
from grader.commands.common import course_option, kata_argument, open_course, refuse_in_release
from grader.errors import UsageError
from grader.progress import PASSED, ProgressStore, kata_state, next_kata


@click.command("hint")
@kata_argument
@course_option
def hint_command(kata_name, course_dir):
    """Reveal the next hint of KATA (earlier ones are shown again)."""
    course = open_course(course_dir)
    kata = course.find(kata_name)
    store = ProgressStore(course)
    before = store.load()["katas"].get(kata.id, {}).get("hints_revealed", 0)
    shown = store.reveal_hint(kata)
    _note(store)
    for number, hint in enumerate(kata.hints[:shown], start=1):
        new = " [bold](new)[/bold]" if number == shown and shown > before else ""
        console.out.print(f"[cyan]Hint {number}/{len(kata.hints)}[/cyan]{new}: {escape(hint.strip())}")
    if shown == before:
        console.out.print(f"That was the last hint. Next: `grade {kata.id}` to check your code, or "
                          f"`grade solution {kata.id} --force` to read the reference solution.")
    else:
        console.out.print(f"Next: edit katas/{kata.dir_name}/{kata.stub}, then `grade {kata.id}`.")


@click.command("solution")
@kata_argument
@click.option("--force", is_flag=True, help="Show it before you passed (this is recorded in your progress).")
@course_option
def solution_command(kata_name, force, course_dir):
    """Show the reference solution of KATA once you passed it."""
    course = open_course(course_dir)
    kata = course.find(kata_name)
    refuse_in_release(course, "`grade solution`",
                      f"`grade hint {kata.id}` reveals the next hint; your instructor decides when solutions "
                      "are shared.")
    store = ProgressStore(course)
    passed = kata_state(store.load(), kata) == PASSED
    if not passed and not force:
        raise UsageError(f"You have not passed {kata.id} yet, so its solution stays hidden.",
                         next_step=f"`grade hint {kata.id}` for a hint, or `grade solution {kata.id} --force` "
                         "to read it anyway (recorded in your progress).")
    store.mark_solution_viewed(kata, forced=not passed)
    _note(store)
    console.out.print(Syntax(kata.solution_path.read_text(encoding="utf-8"), "python", line_numbers=True,
                             theme="ansi_dark"))


@click.command("next")
@course_option
def next_command(course_dir):
    """Say which kata to do next."""
    course = open_course(course_dir)
    store = ProgressStore(course)
    kata = next_kata(course, store.load())
    _note(store)
    if kata is None:
        console.out.print("[bold green]Every kata is passed.[/bold green] Next: `grade progress --html report.html`.")
        return
    console.out.print(f"Next kata: [bold]{kata.id}[/bold] · {escape(kata.title)}\n"
                      f"Read katas/{kata.dir_name}/README.md, edit katas/{kata.dir_name}/{kata.stub}, "
                      f"then run `grade {kata.id}`.")


def _note(store: ProgressStore) -> None:
    if store.note.message:
        console.err.print(f"[yellow]{escape(store.note.message)}[/yellow]")
