"""The learner's progress: one JSON file per learner and course, written only by the
grader after checks ran. Atomic writes under a file lock, so concurrent `grade` runs
never lose a verdict; a corrupt file is backed up and reported, never silently reset.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from grader.catalog import Course, Kata
from grader.jsonfile import write_json_atomic
from grader.results import PASS, KataResult

FORMAT = 1
HISTORY_LIMIT = 50  # per kata: enough for the report's history, small enough to stay fast


def data_root() -> Path:
    env = os.environ.get("KAFKA_KATAS_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "kafka-katas"


def progress_path(course: Course) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", course.title.lower()).strip("-")[:40] or "course"
    digest = hashlib.sha1(str(course.root.resolve()).encode()).hexdigest()[:8]
    return data_root() / "progress" / f"{slug}-{digest}.json"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _empty(course: Course) -> dict:
    return {"format": FORMAT, "course": course.title, "root": str(course.root), "katas": {}}


@dataclass
class LoadNote:
    """Something the learner must hear about (a corrupt file that was backed up)."""

    message: str = ""


class ProgressStore:
    def __init__(self, course: Course, path: Path | None = None):
        self.course = course
        self.path = path or progress_path(course)
        self.note = LoadNote()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _empty(self.course)
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("katas"), dict):
                raise ValueError("unexpected structure")
            return data
        except ValueError as exc:
            backup = self.path.with_name(f"{self.path.name}.corrupt-{dt.datetime.now():%Y%m%d-%H%M%S}")
            os.replace(self.path, backup)
            self.note.message = (f"Your progress file {self.path} could not be read ({exc}); it was moved to "
                                 f"{backup} and a new one started. Your katas are untouched.")
            return _empty(self.course)

    def _write(self, data: dict) -> None:
        write_json_atomic(self.path, data, sort_keys=True)

    def load(self) -> dict:
        with self._locked():
            return self._read()

    def update(self, change) -> dict:
        """Read, change (a function of the data), write: all under the lock."""
        with self._locked():
            data = self._read()
            change(data)
            self._write(data)
            return data

    # ---- what the grader records -----------------------------------------------------
    def run_page_path(self, kata: Kata) -> Path:
        """Where the page of the learner's last run of this kata is kept (the progress page links to it)."""
        return self.path.parent / f"{self.path.stem}-runs" / f"{kata.id}.html"

    def record_result(self, kata: Kata, result: KataResult) -> dict:
        def change(data: dict) -> None:
            entry = _kata_entry(data, kata.id)
            entry["attempts"] += 1
            entry["last_status"] = result.status
            entry["last_run"] = _now()
            entry["checks"] = {c.name: c.status for c in result.checks}
            if result.passed and not entry["first_pass"]:
                entry["first_pass"] = entry["last_run"]
            entry["history"] = (entry["history"] + [{
                "at": entry["last_run"], "status": result.status, "score": result.score,
                "passed": sum(c.status == PASS for c in result.checks), "total": len(result.checks)}])[-HISTORY_LIMIT:]
        return self.update(change)

    def reveal_hint(self, kata: Kata) -> int:
        """Reveal one more hint; returns how many are revealed now."""
        revealed = {}

        def change(data: dict) -> None:
            entry = _kata_entry(data, kata.id)
            entry["hints_revealed"] = min(len(kata.hints), entry["hints_revealed"] + 1)
            revealed["n"] = entry["hints_revealed"]
            # When each hint came, for the attempt timeline of the progress page.
            entry["hint_log"] = (entry.get("hint_log", []) + [{"at": _now(), "n": revealed["n"]}])[-HISTORY_LIMIT:]
        self.update(change)
        return revealed["n"]

    def mark_solution_viewed(self, kata: Kata, forced: bool) -> None:
        def change(data: dict) -> None:
            entry = _kata_entry(data, kata.id)
            entry["solution_viewed"] = "forced" if forced else "after-pass"
        self.update(change)

    def reset(self, kata: Kata | None = None) -> None:
        def change(data: dict) -> None:
            if kata is None:
                data["katas"] = {}
            else:
                data["katas"].pop(kata.id, None)
        self.update(change)


def _kata_entry(data: dict, kata_id: str) -> dict:
    return data["katas"].setdefault(kata_id, {
        "attempts": 0, "first_pass": None, "last_status": None, "last_run": None, "checks": {},
        "hints_revealed": 0, "solution_viewed": None, "history": []})


# ---- derived views ----------------------------------------------------------------------

NOT_STARTED, IN_PROGRESS, PASSED, MASTERED = "not started", "in progress", "passed", "mastered"


def kata_state(data: dict, kata: Kata) -> str:
    entry = data["katas"].get(kata.id)
    if not entry or not entry["attempts"]:
        return NOT_STARTED
    return PASSED if entry["first_pass"] else IN_PROGRESS


def mastery(course: Course, data: dict) -> list[dict]:
    """Per checklist (and pattern) item: its katas, how many passed, and its state by the course's rule."""
    rows = []
    for item in (*course.checklist, *course.patterns):
        katas = [k for k in course.katas if k.checklist == item.id]
        passed = [k for k in katas if kata_state(data, k) == PASSED]
        started = [k for k in katas if kata_state(data, k) != NOT_STARTED]
        needed = len(katas) if course.mastery_rule == "all-katas" else min(1, len(katas))
        if katas and len(passed) >= needed:
            state = MASTERED
        elif started:
            state = IN_PROGRESS
        else:
            state = NOT_STARTED
        rows.append({"id": item.id, "title": item.title, "kind": "checklist" if item in course.checklist
                     else "pattern", "katas": [k.id for k in katas], "passed": len(passed), "state": state,
                     "fraction": (len(passed) / len(katas)) if katas else 0.0})
    return rows


def next_kata(course: Course, data: dict) -> Kata | None:
    """The first kata in course order not passed yet whose required katas have passed."""
    passed = {k.id for k in course.katas if kata_state(data, k) == PASSED}
    for kata in course.katas:
        if kata.id not in passed and all(r in passed for r in kata.requires):
            return kata
    return None
