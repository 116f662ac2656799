"""Field rules for course.yaml and kata.yaml, checked with the line of each field.

Kept apart from catalog.py so the rules read as a table an instructor can follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import CourseError
from grader.yamlload import LineDict

KATA_ID = re.compile(r"^kata-\d{2,3}$")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ITEM_ID = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
DIFFICULTIES = ("beginner", "intermediate", "advanced")


@dataclass(frozen=True)
class Field:
    kind: type | tuple
    required: bool = True
    what: str = ""  # how an instructor should read the expected value


SERVICES = ("postgres", "connect")  # what grader/services/ can start

KATA_FIELDS: dict[str, Field] = {
    "id": Field(str, what="a kata id such as kata-05"),
    "slug": Field(str, what="a kebab-case slug such as manual-commit"),
    "title": Field(str, what="a one-line title"),
    "checklist": Field(str, what="an item id from katas/course.yaml's checklist"),
    "concepts": Field(list, False, "a list of concept tags"),
    "difficulty": Field(str, False, f"one of {', '.join(DIFFICULTIES)}"),
    "requires": Field(list, False, "a list of kata ids"),
    "stub": Field(str, what="the stub's file name inside the kata folder"),
    "solution": Field(str, False, "the solution's file name inside solutions/<kata>/ (default: stub's)"),
    "checks": Field(str, False, "the checks folder under checks/ (default: the kata folder's name)"),
    "broker": Field(dict, False, "a mapping such as {brokers: 3, faults: true}"),
    "services": Field(list, False, "a list of services started beside the broker: postgres, connect"),
    "timeout_s": Field(int, False, "whole seconds, 5 to 900"),
    "hints": Field(list, what="a non-empty list of hints, gentlest first"),
    "further_reading": Field(list, False, "a list of links"),
    "known_bad": Field(list, False, "a list of {file, caught_by, why}"),
    "equivalent_mutants": Field(list, False, "a list of {id, why}: generated mutants that cannot change behaviour"),
    "scoring": Field(dict, False, "a mapping of check function name to {points, visibility}"),
}

COURSE_FIELDS: dict[str, Field] = {
    "format_version": Field(int, what="1"),
    "title": Field(str, what="the course title"),
    "checklist": Field(list, what="a list of {id, title}"),
    "patterns": Field(list, False, "a list of {id, title}: skills beyond the checklist"),
    "mastery": Field(dict, False, "a mapping such as {rule: all-katas}"),
    "katas": Field(list, what="kata folder names in course order"),
}

# katas/release.yaml, written by `grade release`; its presence marks a student release.
RELEASE_FIELDS: dict[str, Field] = {
    "format_version": Field(int, what="1"),
    "grader_version": Field(str, what="the grader version the release pins"),
    "katas": Field(list, what="the kata ids in the release"),
    "held_back": Field(dict, False, "a mapping of kata id to the number of hidden checks left out"),
}

MASTERY_RULES = ("all-katas", "any-kata")
BROKER_FIELDS = {"brokers": int, "faults": bool}
KNOWN_BAD_FIELDS = {"file": str, "caught_by": str, "why": str}
EQUIVALENT_FIELDS = {"id": str, "why": str}
CHECKLIST_FIELDS = {"id": str, "title": str}
SCORING_FIELDS = {"points": int, "visibility": str}


def check_fields(data: LineDict, fields: dict[str, Field], path: Path) -> None:
    for key in data:
        if key not in fields:
            close = _closest(str(key), fields)
            raise CourseError(f"{path}:{data.line_of(key)}: unknown field '{key}'.",
                              next_step=(f"did you mean '{close}'? " if close else "")
                              + f"Allowed fields: {', '.join(fields)}.")
    for key, spec in fields.items():
        if key not in data:
            if spec.required:
                raise CourseError(f"{path}:{data.line}: the required field '{key}' is missing.",
                                  next_step=f"add `{key}:` with {spec.what}.")
            continue
        expect_type(data[key], spec.kind, path, data.line_of(key), key, spec.what)


def expect_type(value: Any, kind, path: Path, line: int, name: str, what: str) -> None:
    # bool is an int in Python; `timeout_s: yes` must still be an error.
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise CourseError(f"{path}:{line}: '{name}' should be {what or kind.__name__}, "
                          f"found {_describe(value)}.",
                          next_step=f"change '{name}' to {what or kind.__name__}.")
    if kind is str and not value.strip():
        raise CourseError(f"{path}:{line}: '{name}' is empty.", next_step=f"give '{name}' {what}.")


def check_sub_mapping(value: Any, allowed: dict[str, type], path: Path, line: int, name: str,
                      required: tuple[str, ...] = ()) -> None:
    if not isinstance(value, dict):
        raise CourseError(f"{path}:{line}: each entry of '{name}' should be a mapping with "
                          f"{', '.join(allowed)}, found {_describe(value)}.",
                          next_step=f"write each entry of '{name}' as `- {{{', '.join(allowed)}}}`.")
    line = getattr(value, "line", line)
    for key in value:
        if key not in allowed:
            raise CourseError(f"{path}:{line}: unknown field '{key}' in '{name}'.",
                              next_step=f"allowed fields: {', '.join(allowed)}.")
    for key in required:
        if key not in value:
            raise CourseError(f"{path}:{line}: '{name}' entry lacks '{key}'.",
                              next_step=f"add `{key}:` to that entry.")
    for key, kind in allowed.items():
        if key in value:
            expect_type(value[key], kind, path, line, f"{name}.{key}", kind.__name__)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 40 else text[:37] + '...'}"


def _closest(name: str, fields: dict[str, Field]) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.6)
    return match[0] if match else None
