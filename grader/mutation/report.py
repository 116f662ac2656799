"""How a mutation sweep is shown: the survivors with their diffs, a score table, JUnit cases."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from grader import console
from grader.mutation.generate import generate


def print_mutant_list(katas, as_json: bool) -> None:
    listing = {k.id: generate(k.solution_path) for k in katas if k.solution_path.is_file()}
    if as_json:
        click.echo(json.dumps({kid: [{"id": m.id, "operator": m.operator, "line": m.line,
                                      "description": m.description, "diff": m.diff} for m in ms]
                               for kid, ms in listing.items()}, indent=2))
        return
    for kid, mutants in listing.items():
        console.out.print(f"[bold]{kid}[/bold]: {len(mutants)} generated mutants")
        for m in mutants:
            console.out.print(f"  {escape(m.id):<44} line {m.line:<4} {escape(m.description)}")


def print_survivors(report) -> None:
    equivalent = f", {len(report.equivalent)} declared equivalent" if report.equivalent else ""
    console.out.print(f"    mutants: {report.killed} of {len(report.outcomes)} killed ({report.score:.0%})"
                      f"{equivalent}, {report.seconds:.0f}s")
    for o in report.survivors:
        m = o.mutant
        console.out.print(f"    [yellow]survived[/yellow] {escape(m.id)}  line {m.line}: {escape(m.description)}")
        for line in m.diff.splitlines()[:12]:
            console.out.print(f"      [dim]{escape(line)}[/dim]")


def print_score_table(validations) -> None:
    table = Table(title="Mutation scores", show_edge=False)
    for col in ("kata", "generated", "equivalent", "killed", "survived", "score", "time"):
        table.add_column(col, justify="left" if col == "kata" else "right")
    for v in validations:
        r = v.mutation
        if r is None:
            table.add_row(v.kata.id, "-", "-", "-", "-", "not run", "-")
            continue
        table.add_row(v.kata.id, str(len(r.generated)), str(len(r.equivalent)), str(r.killed),
                      str(len(r.survivors)), f"{r.score:.0%}", f"{r.seconds:.0f}s")
    console.out.print(table)


def junit_cases(validations) -> list[tuple[str, str, float, str | None]]:
    """One case per mutant: a killed mutant passes, a survivor fails with its diff."""
    cases = []
    for v in validations:
        if v.mutation is None:
            continue
        for o in v.mutation.outcomes:
            failure = None if o.killed else f"survived: {o.mutant.description}\n{o.mutant.diff}"
            cases.append((f"{v.kata.id}.mutants", o.mutant.id, o.result.duration, failure))
    return cases
