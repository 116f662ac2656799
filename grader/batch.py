"""Grade a class: every student's submission × every chosen kata, into a gradebook and feedback.

A submission is a folder or a .zip per student holding files named like the stubs (at its top, or
under katas/<kata folder>/ as in a student's clone). Each graded pair is one isolated run
(grader/runner.py: its own judge, sandboxed learner host, unique topic names) on one shared broker;
katas that need a cluster of their own get one, graded one run at a time (their checks stop nodes).

Resumable: every finished pair is written to DIR/.batch/<student>/<kata>.json (atomically) as soon
as it ends, and a rerun grades only the pairs without one. Infrastructure trouble is never written
there, so a rerun grades those pairs again instead of recording the student's failure.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import jinja2

from grader import clientconfig, run_page
from grader.catalog import Kata
from grader.errors import GraderError, InfraError
from grader.runner import BrokerDied, run_checks

# Rows for submissions that were never run: the file is not there, or it cannot be run at all.
MISSING, MALFORMED, INFRA = "missing", "malformed", "infra-error"  # infra-error rows are never recorded
GRADEBOOK_FIELDS = ("student", "kata", "points", "max_points", "status", "seconds")
ZIP_MAX_BYTES = 20 << 20  # a student's files are a few kB; a bigger zip is not a submission


@dataclass
class Submission:
    student: str
    source: Path
    root: Path | None = None  # the folder holding the files (a zip is extracted first)
    problem: str = ""  # why nothing of this submission can be graded (a zip that is not a zip)


@dataclass
class Row:
    student: str
    kata: str
    points: int
    max_points: int
    status: str
    seconds: float
    message: str = ""
    checks: list[dict] = field(default_factory=list)
    isolation: str = ""  # the layers that held around the student's code (grader/host/sandbox.py)
    page: str = ""  # the run's HTML page as the student may see it (grader/run_page.py), pictures included


def discover(submissions_dir: Path, work_dir: Path) -> list[Submission]:
    """One Submission per folder or .zip directly inside submissions_dir (other files are rows too)."""
    found = []
    seen: dict[str, Path] = {}
    for entry in sorted(submissions_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        name = entry.stem if entry.is_file() else entry.name
        if name in seen:  # alice/ and alice.zip: which one counts is the instructor's call, not ours
            found.append(Submission(entry.name, entry, problem=(
                f"{entry} and {seen[name]} are both submissions of '{name}': keep one, then run the batch again.")))
            continue
        seen[name] = entry
        if entry.is_dir():
            found.append(Submission(entry.name, entry, root=entry))
        elif entry.suffix == ".zip":
            found.append(_unzip(entry, work_dir / "unzipped" / entry.stem))
        else:
            found.append(Submission(entry.stem, entry, problem=(
                f"{entry} is neither a folder nor a .zip: a submission is one of those per student.")))
    return found


def _unzip(path: Path, dest: Path) -> Submission:
    sub = Submission(path.stem, path)
    if not zipfile.is_zipfile(path):
        sub.problem = f"{path} is not a zip archive (the file is damaged, or another format renamed .zip)."
        return sub
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > ZIP_MAX_BYTES:
                sub.problem = f"{path} unpacks to more than {ZIP_MAX_BYTES >> 20} MB: not a set of kata files."
                return sub
            for member in members:
                name = PurePosixPath(member.filename)
                # Never write outside dest: absolute paths and .. parts are refused, not followed.
                if name.is_absolute() or ".." in name.parts:
                    sub.problem = f"{path} holds '{member.filename}', a path outside the archive's folder."
                    return sub
                target = dest.joinpath(*name.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:  # RuntimeError: an encrypted member
        sub.problem = f"{path} could not be unpacked: {exc}."
        return sub
    # A zip of the student's folder holds one top folder: grade its contents.
    tops = [p for p in dest.iterdir() if p.name != "__MACOSX"]
    sub.root = tops[0] if len(tops) == 1 and tops[0].is_dir() else dest
    return sub


def locate(sub: Submission, kata: Kata) -> tuple[Path | None, str]:
    """The student's file for this kata, or why there is none (the row's message)."""
    for candidate in (sub.root / kata.stub, sub.root / "katas" / kata.dir_name / kata.stub):
        if _linked(candidate, sub.root):
            # A link could name any file on the grading machine, the reference solution included.
            return None, f"{candidate.relative_to(sub.root)} is a symbolic link: submit the file itself."
        if candidate.is_file():
            return candidate, ""
    elsewhere = sorted(str(p.relative_to(sub.root)) for p in sub.root.rglob(kata.stub) if p.is_file())
    if elsewhere:
        return None, (f"{kata.stub} is in the wrong place ({', '.join(elsewhere)}): put it at the top of the "
                      f"submission or under katas/{kata.dir_name}/.")
    return None, f"no {kata.stub} in {sub.source.name} (expected at its top or under katas/{kata.dir_name}/)."


def _linked(path: Path, root: Path) -> bool:
    """True when path, or a folder between root and it, is a symbolic link."""
    while path != root and path != path.parent:
        if path.is_symlink():
            return True
        path = path.parent
    return False


def syntax_problem(path: Path) -> str:
    """Compiling (never running) the file finds what cannot be graded at all."""
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as exc:
        return f"{path.name} line {exc.lineno}: {exc.msg} — Python cannot read the file, so no check ran."
    except ValueError as exc:  # null bytes
        return f"{path.name}: {exc} — Python cannot read the file, so no check ran."
    return ""


class Batch:
    """The pairs to grade, what is already done (DIR/.batch), and the gradebook written from them."""

    def __init__(self, katas: list[Kata], submissions: list[Submission], out: Path):
        self.katas, self.submissions, self.out = katas, submissions, out
        self.state = out / ".batch"
        self._lock = threading.Lock()

    def _state_file(self, student: str, kata: Kata) -> Path:
        # The student's name as given, plus a hash: names differing only in case or odd characters never collide.
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in student)
        return self.state / f"{safe}-{hashlib.sha1(student.encode()).hexdigest()[:8]}" / f"{kata.id}.json"

    def done(self, student: str, kata: Kata) -> Row | None:
        path = self._state_file(student, kata)
        try:
            return Row(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None  # absent, or torn by a crash before the rename: grade it again

    def record(self, row: Row, kata: Kata) -> None:
        path = self._state_file(row.student, kata)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{threading.get_ident()}")
        tmp.write_text(json.dumps(asdict(row)))
        os.replace(tmp, path)

    def pending(self) -> list[tuple[Submission, Kata]]:
        return [(s, k) for s in self.submissions for k in self.katas if self.done(s.student, k) is None]

    def rows(self) -> list[Row]:
        return [r for s in self.submissions for k in self.katas if (r := self.done(s.student, k))]

    def write_reports(self, infra: dict[tuple[str, str], str]) -> Path:
        """gradebook.csv and feedback/<student>.txt|.json from every recorded row (and unrecorded infra rows)."""
        rows = {(r.student, r.kata): r for r in self.rows()}
        by_id = {k.id: k for k in self.katas}
        for (student, kata_id), message in infra.items():
            rows.setdefault((student, kata_id), Row(student, kata_id, 0, _max(by_id[kata_id]), INFRA, 0.0, message))
        gradebook = self.out / "gradebook.csv"
        with gradebook.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(GRADEBOOK_FIELDS)
            for s in self.submissions:
                for k in self.katas:
                    if r := rows.get((s.student, k.id)):
                        writer.writerow([r.student, r.kata, r.points, r.max_points, r.status, f"{r.seconds:.1f}"])
        feedback = self.out / "feedback"
        feedback.mkdir(exist_ok=True)
        for s in self.submissions:
            mine = [rows[(s.student, k.id)] for k in self.katas if (s.student, k.id) in rows]
            _write_feedback(feedback, s.student, mine)
        return gradebook


def _write_feedback(folder: Path, student: str, rows: list[Row]) -> None:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in student)
    (folder / f"{stem}.json").write_text(json.dumps({
        "student": student, "points": sum(r.points for r in rows), "max_points": sum(r.max_points for r in rows),
        "katas": [{k: v for k, v in asdict(r).items() if k != "page"} for r in rows]}, indent=2))
    _write_pages(folder, stem, student, rows)
    lines = [f"Feedback for {student}: {sum(r.points for r in rows)} of {sum(r.max_points for r in rows)} points", ""]
    for r in rows:
        lines.append(f"{r.kata}: {r.status}, {r.points}/{r.max_points} points")
        if r.message:
            lines.append(f"  {r.message.splitlines()[0]}")
        for c in r.checks:
            # Hidden checks are named for what they check, never shown with their failure detail.
            mark = "passed" if c["status"] == "pass" else c["status"]
            lines.append(f"  - {c['title']}: {mark}")
            if c["status"] != "pass" and c["message"] and c["visibility"] != "hidden":
                lines += [f"      {line[:300]}" for line in c["message"].splitlines()[:4]]
        lines.append("")
    (folder / f"{stem}.txt").write_text("\n".join(lines) + "\n")


def _write_pages(folder: Path, stem: str, student: str, rows: list[Row]) -> None:
    """feedback/<student>.html (every kata, linked) and feedback/<student>/<kata>.html (each run's page)."""
    pages = folder / stem
    for r in rows:
        if r.page:
            pages.mkdir(exist_ok=True)
            (pages / f"{r.kata}.html").write_text(r.page, encoding="utf-8")
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    (folder / f"{stem}.html").write_text(env.get_template("feedback.html.j2").render(
        student=student, rows=rows, folder=stem, points=sum(r.points for r in rows),
        max_points=sum(r.max_points for r in rows)), encoding="utf-8")


def unrunnable(sub: Submission, kata: Kata) -> Row | None:
    """The row of a submission that cannot be run at all (no broker needed), else None."""
    if sub.problem:
        return Row(sub.student, kata.id, 0, _max(kata), MALFORMED, 0.0, sub.problem)
    path, why = locate(sub, kata)
    if path is None:
        status = MALFORMED if "symbolic link" in why else MISSING
        return Row(sub.student, kata.id, 0, _max(kata), status, 0.0, why)
    if problem := syntax_problem(path):
        return Row(sub.student, kata.id, 0, _max(kata), MALFORMED, 0.0, problem)
    return None


def grade_pair(sub: Submission, kata: Kata, broker) -> Row:
    """One student × one kata, as a row. Raises InfraError when the result would say nothing."""
    if row := unrunnable(sub, kata):
        return row
    path, _ = locate(sub, kata)
    try:
        result = run_checks(kata, path, broker.bootstrap_servers, f"batch:{sub.student}",
                            broker_alive=None if kata.faults else broker.process_alive,
                            cluster_file=getattr(broker, "control_file", None))
    except BrokerDied:
        raise InfraError("The Kafka broker died during the batch.", detail=broker.death_report()) from None
    if not result.passed and not broker.alive():
        raise InfraError("The Kafka broker died during the batch.", detail=broker.death_report())
    checks = [{"name": c.name, "title": c.title, "status": c.status, "points": c.earned, "max_points": c.points,
               "visibility": c.visibility, "message": c.message[-2000:]} for c in result.checks]
    return Row(sub.student, kata.id, result.points, result.max_points, result.status, round(result.duration, 2),
               result.message, checks, result.isolation.get("isolation", "none"),
               run_page.render(run_page.for_students(result), kata))


def _max(kata: Kata) -> int:
    from grader import scoring

    return scoring.declared_max(kata)


def run_batch(batch: Batch, broker_for: Callable[[Kata | None], object], jobs: int,
              on_done: Callable[[Row | None], None] = lambda row: None) -> dict[tuple[str, str], str]:
    """Grade every pending pair; return the pairs infrastructure trouble left ungraded (student, kata) → why.

    broker_for(None) is the shared broker; broker_for(kata) a context manager for a kata's own cluster.
    """
    infra: dict[tuple[str, str], str] = {}
    pending = []
    for sub, kata in batch.pending():
        if row := unrunnable(sub, kata):  # recorded at once: a class of empty folders starts no broker
            batch.record(row, kata)
            on_done(row)
        else:
            pending.append((sub, kata))
    shared = [(s, k) for s, k in pending if not clientconfig.needs_local_broker(k)]
    own = [(s, k) for s, k in pending if clientconfig.needs_local_broker(k)]

    stopping = threading.Event()

    def one(pair, broker):
        if stopping.is_set():
            return
        sub, kata = pair
        try:
            row = grade_pair(sub, kata, broker)
        except GraderError as exc:
            # The broker's or the course's trouble (a kata's checks missing), never the student's: not recorded.
            with batch._lock:
                infra[(sub.student, kata.id)] = exc.what
            on_done(None)
            return
        # A run cut short by Ctrl-C says nothing about the student: it is graded again on the rerun.
        if not stopping.is_set():
            batch.record(row, kata)
            on_done(row)

    try:
        if shared:
            broker = broker_for(None)
            pool = ThreadPoolExecutor(max_workers=max(1, jobs))
            try:
                for future in [pool.submit(one, p, broker) for p in shared]:
                    future.result()
            except BaseException:
                stopping.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        for kata in dict.fromkeys(k for _, k in own):
            with broker_for(kata) as cluster:
                for pair in ((s, k) for s, k in own if k is kata):
                    one(pair, cluster)
    except BaseException:
        stopping.set()  # before the learner processes are killed, so no killed run is recorded
        raise
    return infra
