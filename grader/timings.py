"""How long each kata took to validate last time, so `grade validate --jobs N` can start the
longest first. A cache, nothing more: a missing or unreadable file only costs scheduling."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from grader.broker.jars import cache_root
from grader.jsonfile import write_json_atomic

UNKNOWN_CLUSTER_S = 60.0


def _path() -> Path:
    return cache_root() / "validate-times.json"


def _all() -> dict:
    try:
        data = json.loads(_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def load(course_title: str) -> dict[str, float]:
    """Kata id -> seconds, for the course of this title (two courses may share kata ids; two clones
    of one course share their times)."""
    try:
        return {str(k): float(v) for k, v in _all().get(course_title, {}).items()}
    except (AttributeError, TypeError, ValueError):
        return {}


def save(course_title: str, times: dict[str, float]) -> None:
    with contextlib.suppress(OSError):  # a read-only cache must not fail a validation
        data = _all()
        data[course_title] = {**load(course_title), **{k: round(v, 1) for k, v in times.items()}}
        write_json_atomic(_path(), data, sort_keys=True)


def longest_first(katas: list, times: dict[str, float]) -> list:
    """The katas, longest first by their last time. Unknown ones keep course order, after the known
    ones, except katas with a cluster of their own: they start one inside their job and take long."""
    return sorted(katas, key=lambda k: -times.get(k.id, UNKNOWN_CLUSTER_S if k.needs_own_cluster else 0.0))
