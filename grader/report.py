"""Terminal report of a graded kata, rendered from a jinja2 template."""

from __future__ import annotations

from functools import lru_cache

import jinja2
from rich.markup import escape

from grader import picture_text
from grader.catalog import Kata
from grader.results import KataResult


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader", "templates"),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    # Everything from checks, learner code or the broker is escaped for rich markup.
    env.filters["esc"] = lambda value: escape(str(value))
    env.filters["indent_lines"] = lambda value, n=4: "\n".join(" " * n + line for line in str(value).splitlines())
    return env


def render(result: KataResult, kata: Kata, show_passed: bool = True, next_steps: list[str] | None = None,
           ascii_only: bool = False) -> str:
    failures = result.failed_checks
    passed = [c for c in result.checks if c.status == "pass"]
    return _env().get_template("report.txt.j2").render(
        r=result, kata=kata, failures=failures, passed=passed, show_passed=show_passed,
        next_steps=next_steps or [],
        # Already rich markup with everything from the check escaped (grader/picture_text.py).
        draw=lambda picture: "\n".join("    " + line for line in picture_text.render(picture, ascii_only)),
    )
