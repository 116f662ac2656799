"""Errors the grader reports to people, each with the next command to run.

Exit codes (DESIGN.md): 0 all checks passed, 1 a check failed, 2 usage error,
3 infrastructure error. Infrastructure errors are never the learner's failure.
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INFRA = 3


class GraderError(Exception):
    """An error with a plain-language cause and a next step."""

    exit_code = EXIT_USAGE
    title = "Error"

    def __init__(self, what: str, next_step: str = "", detail: str = ""):
        super().__init__(what)
        self.what = what
        self.next_step = next_step
        self.detail = detail

    def render(self) -> str:
        parts = [f"{self.title}: {self.what}"]
        if self.detail:
            parts.append(self.detail.rstrip())
        if self.next_step:
            parts.append(f"Next: {self.next_step}")
        return "\n".join(parts)


class UsageError(GraderError):
    """The command line or the course files are wrong (exit 2)."""

    exit_code = EXIT_USAGE
    title = "Error"


class CourseError(UsageError):
    """A kata.yaml / course.yaml problem, pointing at the file and line."""

    title = "Course error"


class InfraError(GraderError):
    """The broker, Java, mvn or the grader itself failed (exit 3): not the learner's fault."""

    exit_code = EXIT_INFRA
    title = "Infrastructure error (not a problem with your code)"
