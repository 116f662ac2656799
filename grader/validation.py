"""Prove a kata honest: its files and texts are in order, the reference solution
passes, the stub fails, and every known-bad fixture is caught by the check it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from grader import scoring
from grader.catalog import Course, Kata
from grader.kit_lint import grader_imports_outside_kit
from grader.patches import PatchDoesNotApply, materialized
from grader.results import PASS, KataResult
from grader.runner import run_checks

README_SECTIONS = ("## The concept", "## Your task", '## What "done" means', "## Further reading")


@dataclass
class KataValidation:
    kata: Kata
    problems: list[str] = field(default_factory=list)
    runs: list[KataResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mutation: object | None = None  # a grader.mutation.sweep.MutationReport with --mutants

    @property
    def ok(self) -> bool:
        return not self.problems


def lint(kata: Kata, course: Course) -> list[str]:
    """Static rules in the rustlings spirit; each problem names the file and the fix."""
    problems = []
    for label, path in (("stub", kata.stub_path), ("solution", kata.solution_path)):
        if not path.is_file():
            problems.append(f"{path}: the {label} file is missing. Create it (see docs/authoring.md).")
    if kata.stub_path.is_file() and "TODO" not in kata.stub_path.read_text(encoding="utf-8", errors="replace"):
        problems.append(f"{kata.stub_path}: the stub has no `# TODO` marker. Mark where the learner works.")
    readme = kata.kata_dir / "README.md"
    if not readme.is_file():
        problems.append(f"{readme}: the README is missing.")
    else:
        text = readme.read_text(encoding="utf-8", errors="replace")
        for section in README_SECTIONS:
            if section not in text:
                problems.append(f"{readme}: the section '{section}' is missing.")
    if not kata.checks_dir.is_dir() or not list(kata.checks_dir.glob("test_*.py")):
        problems.append(f"{kata.checks_dir}: no hidden checks (test_*.py) found.")
    else:
        problems += grader_imports_outside_kit(kata.checks_dir)
        problems += scoring.unknown_names(kata)
        names = _check_names(kata)
        for bad in kata.known_bad:
            bad_path = kata.checks_dir / "known_bad" / bad.file
            if not bad_path.is_file():
                problems.append(f"{bad_path}: the known-bad fixture is missing.")
            elif bad_path.suffix == ".patch" and kata.solution_path.is_file():
                try:
                    with materialized(kata.solution_path, bad_path):
                        pass
                except PatchDoesNotApply as exc:
                    problems.append(f"{exc.what} {exc.detail.splitlines()[0] if exc.detail else ''}".rstrip()
                                    + f" Next: {exc.next_step}")
            if bad.caught_by not in names:
                problems.append(f"{kata.yaml_path}: known_bad {bad.file} names the check '{bad.caught_by}', "
                                f"which does not exist (checks: {', '.join(sorted(names))}).")
    leaked = [p for p in kata.kata_dir.rglob("*.py") if re.search(r"^\s*def test_", p.read_text(errors="replace"),
                                                                    re.M)]
    problems += [f"{p}: check code in the learner's folder. Move it under checks/." for p in leaked]
    for req in kata.requires:
        if req not in {k.id for k in course.katas}:
            problems.append(f"{kata.yaml_path}: requires '{req}', which is not a kata of this course.")
    return problems


def _check_names(kata: Kata) -> set[str]:
    names = set()
    for path in kata.checks_dir.glob("test_*.py"):
        names.update(re.findall(r"^def (test_\w+)", path.read_text(errors="replace"), re.M))
    return names


def validate_kata(kata: Kata, course: Course, bootstrap_servers: str, broker_alive=None,
                  cluster_file=None, solution_only: bool = False) -> KataValidation:
    """solution_only: run just the solution (re-running chosen mutants needs no stub or known-bad runs)."""
    v = KataValidation(kata, problems=lint(kata, course))
    if v.problems:
        return v  # running checks against missing files would only repeat the problem

    def run(path, target, only=None):
        return run_checks(kata, path, bootstrap_servers, target, broker_alive=broker_alive, cluster_file=cluster_file,
                          only=only)

    solution = run(kata.solution_path, "solution")
    v.runs.append(solution)
    if not solution.passed:
        failed = ", ".join(c.name for c in solution.failed_checks) or solution.status
        v.problems.append(f"{kata.id}: the reference solution does not pass ({failed}).")
    if solution_only:
        return v
    stub = run(kata.stub_path, "stub")
    v.runs.append(stub)
    if stub.passed:
        v.problems.append(f"{kata.id}: the untouched stub passes every check: the checks cannot fail. "
                          "Make the stub incomplete, or strengthen the checks.")
    for bad in kata.known_bad:
        with materialized(kata.solution_path, kata.checks_dir / "known_bad" / bad.file) as path:
            _validate_known_bad(v, kata, bad, path, run)
    return v


def _validate_known_bad(v: KataValidation, kata: Kata, bad, path, run) -> None:
    """Grade one known-bad mistake (path: the patched solution or the file itself)."""
    # Only the named check runs: that it fails is the whole claim, and the other checks
    # would mostly wait out their deadlines on wrong code. Running them all is the slow path,
    # taken only to tell the author which check does catch the fixture.
    result = run(path, f"known-bad:{bad.file}", only=bad.caught_by)
    v.runs.append(result)
    if not result.passed:
        v.notes.append(f"known-bad {bad.file} caught by {bad.caught_by}"
                       + (f" ({result.status})" if result.status != "fail" else ""))
        return
    full = run(path, f"known-bad:{bad.file} (all checks)")
    v.runs.append(full)
    catchers = sorted(c.name for c in full.failed_checks)
    if full.passed:
        v.problems.append(f"{kata.id}: known-bad {bad.file} ({bad.why}) passes every check.")
    elif bad.caught_by in catchers:
        # Passed its named check once, failed it the next time: the check depends on luck here.
        v.problems.append(f"{kata.id}: known-bad {bad.file} is caught by '{bad.caught_by}' only some of the time "
                          "(it passed that check once, then failed it): make the check deterministic for this "
                          "mistake (cause the failure for real instead of waiting for it to happen).")
    else:
        v.problems.append(f"{kata.id}: known-bad {bad.file} is not caught by '{bad.caught_by}' "
                          f"(it is caught by: {', '.join(catchers) or full.status}). Name that check in "
                          f"kata.yaml, or make '{bad.caught_by}' catch it.")


def validate_mutants(v: KataValidation, bootstrap_servers: str, jobs: int = 1, only: tuple[str, ...] = (),
                     min_score: float | None = None, broker_alive=None, cluster_file=None, gate=None,
                     progress=None) -> None:
    """The generated mutants of the kata's solution, after the usual validation (which they need:
    a solution that fails kills every mutant and proves nothing)."""
    from grader.mutation.sweep import MIN_SCORE, sweep

    if v.problems and not v.runs or (v.runs and not v.runs[0].passed):
        return
    solution_seconds = v.runs[0].duration if v.runs else None
    report = sweep(v.kata, bootstrap_servers, jobs=jobs, only=only, solution_seconds=solution_seconds,
                   broker_alive=broker_alive, cluster_file=cluster_file, gate=gate, progress=progress)
    v.mutation = report
    v.problems.extend(report.problems(MIN_SCORE if min_score is None else min_score))


def summary_status(validations: list[KataValidation]) -> str:
    return PASS if all(v.ok for v in validations) else "fail"
