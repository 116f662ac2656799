"""Points and visibility per check (kata.yaml `scoring:`), and the check functions a kata really has.

kata.yaml names checks by their test function; a name that matches no function would silently leave
the real check at the defaults (1 point, public), so a typo could publish a check meant to stay hidden.
That is why `grade validate` and `grade release` compare the names with the functions found here.
The check files are read with `ast`, never imported: importing them would run the course's code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grader.errors import CourseError

if TYPE_CHECKING:  # catalog imports this module; only type hints go the other way
    from grader.catalog import Kata
    from grader.results import CheckResult

PUBLIC, HIDDEN = "public", "hidden"
VISIBILITIES = (PUBLIC, HIDDEN)
DEFAULT_POINTS = 1
MAX_POINTS = 1000
# pytest's defaults (the judge runs pytest with an empty ini, so these are the files it collects).
CHECK_FILE_GLOBS = ("test_*.py", "*_test.py")


@dataclass(frozen=True)
class CheckScore:
    name: str
    points: int = DEFAULT_POINTS
    visibility: str = PUBLIC
    line: int = 0  # of the name in kata.yaml, for error messages

    @property
    def hidden(self) -> bool:
        return self.visibility == HIDDEN


def parse(raw, path: Path) -> tuple[CheckScore, ...]:
    """kata.yaml's `scoring:` mapping (already known to be a mapping) as CheckScores."""
    from grader import schema

    scores = []
    for name, spec in raw.items():
        line = raw.line_of(name) if hasattr(raw, "line_of") else 0
        if not isinstance(name, str) or not name.startswith("test"):
            raise CourseError(f"{path}:{line}: 'scoring' names a check by its test function name, found {name!r}.",
                              next_step="use the name of a test function in the kata's checks, "
                              "e.g. `test_value_arrives: {points: 2}`.")
        schema.check_sub_mapping(spec, schema.SCORING_FIELDS, path, line, f"scoring.{name}")
        points = spec.get("points", DEFAULT_POINTS)
        if not 0 <= points <= MAX_POINTS:
            raise CourseError(f"{path}:{line}: scoring.{name}.points is {points}; points are 0 to {MAX_POINTS}.",
                              next_step=f"give {name} a whole number of points from 0 to {MAX_POINTS}.")
        visibility = spec.get("visibility", PUBLIC)
        if visibility not in VISIBILITIES:
            raise CourseError(f"{path}:{line}: scoring.{name}.visibility '{visibility}' is unknown.",
                              next_step=f"use one of: {', '.join(VISIBILITIES)} (hidden checks count in "
                              "instructor grading and are left out of `grade release`).")
        scores.append(CheckScore(name, points, visibility, line))
    return tuple(scores)


def check_files(checks_dir: Path) -> list[Path]:
    files = {p for glob in CHECK_FILE_GLOBS for p in checks_dir.glob(glob)}
    return sorted(files)


def test_functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The module-level functions pytest collects as checks (classes of checks are not used in this course)."""
    return [node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")]


def check_functions(checks_dir: Path) -> dict[str, Path]:
    """Every check function name of a kata, with the file that defines it. Raises CourseError on a file
    that does not parse (the judge could not load it either)."""
    found: dict[str, Path] = {}
    for path in check_files(checks_dir):
        for node in test_functions(parse_file(path)):
            found.setdefault(node.name, path)
    return found


def parse_file(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None) or 0
        raise CourseError(f"{path}:{line}: this check file is not valid Python ({exc}).",
                          next_step="fix it, then run `grade validate` again.") from None


UNMATCHED_FIX = "fix the name; an unmatched name leaves the real check public and worth 1 point."


def unknown_names(kata: Kata, with_fix: bool = True) -> list[str]:
    """Problems (one line each, file:line, and the fix unless the caller gives its own) for scoring
    entries that name no check function."""
    if not kata.scoring:
        return []
    try:
        names = check_functions(kata.checks_dir) if kata.checks_dir.is_dir() else {}
    except CourseError as exc:
        return [f"{exc.what} Next: {exc.next_step}"]
    fix = f" Next: {UNMATCHED_FIX}" if with_fix else ""
    return [f"{kata.yaml_path}:{s.line}: scoring names the check '{s.name}', which is not a check function in "
            f"{kata.checks_dir} (checks: {', '.join(sorted(names)) or 'none'}).{fix}"
            for s in kata.scoring if s.name not in names]


def score_of(kata: Kata, check_name: str) -> CheckScore:
    """A check's points and visibility; `test_x[param]` (a parametrized case) scores as `test_x`."""
    base = check_name.split("[", 1)[0]
    return next((s for s in kata.scoring if s.name == base), CheckScore(base))


def apply(kata: Kata, checks: list[CheckResult]) -> None:
    for check in checks:
        score = score_of(kata, check.name)
        check.points, check.visibility = score.points, score.visibility


def declared_max(kata: Kata) -> int:
    """Points of every check the kata's files define: the maximum when a run reported no checks at all."""
    try:
        names = check_functions(kata.checks_dir) if kata.checks_dir.is_dir() else {}
    except CourseError:
        return 0
    return sum(score_of(kata, name).points for name in names)
