"""`grade KATA --html FILE`: one self-contained page of a run (jinja2, autoescaped, inline SVG, no script)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import jinja2

from grader import __version__
from grader.catalog import Kata
from grader.picture_text import offset_cells
from grader.results import KataResult


def render(result: KataResult, kata: Kata) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("run.html.j2").render(
        r=result, kata=kata, failures=result.failed_checks, others=[c for c in result.checks
                                                                   if c not in result.failed_checks],
        cells=offset_cells, generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"), version=__version__)


HIDDEN_NOTE = "A hidden check: your instructor sees what it found."


def for_students(result: KataResult) -> KataResult:
    """The run as a student may see it: hidden checks keep their title and verdict, not their evidence."""
    checks = [c if c.visibility != "hidden" else dataclasses.replace(c, message=HIDDEN_NOTE if c.message else "",
                                                                    output="", pictures=[])
              for c in result.checks]
    return dataclasses.replace(result, checks=checks)
