"""One place for terminal output: rich consoles that honour NO_COLOR and --quiet."""

from __future__ import annotations

import os

from rich.console import Console

from grader.errors import GraderError

# soft_wrap: long lines are left to the terminal, so piped output and logs keep every
# message on one line (and tests can find the phrases they look for).
out = Console(highlight=False, soft_wrap=True, no_color=bool(os.environ.get("NO_COLOR")) or None)
err = Console(stderr=True, highlight=False, soft_wrap=True, no_color=bool(os.environ.get("NO_COLOR")) or None)
_quiet = False


def set_quiet(value: bool) -> None:
    global _quiet
    _quiet = value


def draws_ascii(forced: bool = False) -> bool:
    """Pictures in ASCII: when asked (--ascii: a log viewer or font without block characters) or when the
    terminal's encoding cannot carry them."""
    return forced or not (out.encoding or "").lower().startswith("utf")


def progress(message: str) -> None:
    """Broker and setup steps: on stderr, so --json output on stdout stays clean."""
    if not _quiet:
        err.print(f"[dim]› {message}[/dim]", markup=True, highlight=False)


def spinner(message: str):
    """A spinner on stderr while something slow happens (rich shows it only on a terminal)."""
    import contextlib

    return contextlib.nullcontext() if _quiet else err.status(f"[dim]{message}[/dim]", spinner="dots")


def error(exc: GraderError) -> None:
    from rich.markup import escape

    style = "bold yellow" if exc.exit_code == 3 else "bold red"
    lines = exc.render().splitlines()
    err.print(f"[{style}]{escape(lines[0])}[/{style}]")
    for line in lines[1:]:
        if line.startswith("Next: "):
            err.print(f"[bold]Next:[/bold] {escape(line[6:])}")
        else:
            err.print(escape(line))
