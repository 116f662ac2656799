"""Run a kata's checks against every generated mutant of its reference solution.

A mutant is killed when some check fails on it (or it times out, or crashes the check
process): it runs with all checks and stops at the first failure. The score is
killed / (generated - declared equivalent); survivors are listed with their diff, so the
author sees exactly which plausible mistake the checks let through.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from grader.catalog import Kata
from grader.mutation.generate import Mutant, generate
from grader.results import KataResult
from grader.runner import run_checks

MIN_SCORE = 0.90  # of the non-equivalent generated mutants, killed
MAX_EQUIVALENT_SHARE = 0.20  # equivalents are reviewed, not a way out


@dataclass
class MutantOutcome:
    mutant: Mutant
    result: KataResult

    @property
    def killed(self) -> bool:
        return not self.result.passed

    @property
    def killed_by(self) -> str:
        failed = [c.name for c in self.result.failed_checks]
        return failed[0] if failed else self.result.status


@dataclass
class MutationReport:
    kata: Kata
    generated: list[Mutant]
    equivalent: list[str]  # ids of generated mutants declared equivalent
    outcomes: list[MutantOutcome] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # declared ids that match no generated mutant
    seconds: float = 0.0
    selected: bool = False  # only some mutants were run (--mutant): no score verdict

    @property
    def killed(self) -> int:
        return sum(o.killed for o in self.outcomes)

    @property
    def survivors(self) -> list[MutantOutcome]:
        return [o for o in self.outcomes if not o.killed]

    @property
    def score(self) -> float:
        return self.killed / len(self.outcomes) if self.outcomes else 1.0

    def problems(self, min_score: float = MIN_SCORE) -> list[str]:
        out = [f"{self.kata.yaml_path}: equivalent mutant '{i}' is no longer generated (the solution changed): "
               "remove the declaration, or declare the mutant's new id." for i in self.stale]
        if self.generated and len(self.equivalent) > MAX_EQUIVALENT_SHARE * len(self.generated):
            out.append(f"{self.kata.id}: {len(self.equivalent)} of {len(self.generated)} generated mutants are "
                       f"declared equivalent, more than {MAX_EQUIVALENT_SHARE:.0%}: strengthen the checks instead.")
        if not self.selected and self.score < min_score:
            out.append(f"{self.kata.id}: mutation score {self.score:.0%} ({self.killed} of {len(self.outcomes)} "
                       f"mutants killed) is below {min_score:.0%}; {len(self.survivors)} survived (listed above). "
                       f"Strengthen the checks, or declare a truly harmless one in kata.yaml equivalent_mutants.")
        return out

    def to_dict(self) -> dict:
        return {"generated": len(self.generated), "equivalent": len(self.equivalent), "run": len(self.outcomes),
                "killed": self.killed, "score": round(self.score, 4), "seconds": round(self.seconds, 1),
                "stale_equivalents": self.stale,
                "survivors": [{"id": o.mutant.id, "operator": o.mutant.operator, "line": o.mutant.line,
                               "description": o.mutant.description, "diff": o.mutant.diff} for o in self.survivors],
                "killed_by": {o.mutant.id: o.killed_by for o in self.outcomes if o.killed}}


def mutant_timeout(kata: Kata, solution_seconds: float | None) -> float:
    """A mutant that hangs is killed by its timeout; it need not wait the kata's whole budget."""
    if not solution_seconds:
        return float(kata.timeout_s)
    return min(float(kata.timeout_s), max(30.0, 3 * solution_seconds + 15))


def sweep(kata: Kata, bootstrap_servers: str, jobs: int = 1, only: tuple[str, ...] = (),
          solution_seconds: float | None = None, broker_alive=None, cluster_file=None,
          progress=None, gate=None) -> MutationReport:
    """gate: a semaphore shared by every kata's sweep, so --jobs bounds the check runs in flight."""
    started = time.monotonic()
    generated = generate(kata.solution_path)
    ids = {m.id for m in generated}
    declared = {e.id for e in kata.equivalent_mutants}
    report = MutationReport(kata, generated, equivalent=[m.id for m in generated if m.id in declared],
                            stale=sorted(declared - ids), selected=bool(only))
    unknown = sorted(set(only) - ids)
    if unknown:
        from grader.errors import UsageError
        raise UsageError(f"{kata.id} generates no mutant with the id '{unknown[0]}'.",
                         next_step=f"list them with `grade validate {kata.id} --list-mutants`.")
    todo = [m for m in generated if (m.id in only if only else m.id not in declared)]
    timeout = mutant_timeout(kata, solution_seconds)

    def run_one(mutant: Mutant) -> MutantOutcome:
        with gate or contextlib.nullcontext(), tempfile.TemporaryDirectory(prefix="kata-mutant-") as tmp:
            path = Path(tmp) / kata.solution_path.name
            path.write_text(mutant.source, encoding="utf-8")
            result = run_checks(kata, path, bootstrap_servers, f"mutant:{mutant.id}", timeout_s=timeout,
                                broker_alive=broker_alive, cluster_file=cluster_file, stop_at_first_failure=True)
        if progress:
            progress(f"{kata.id} mutant {mutant.id}: {'killed' if not result.passed else 'SURVIVED'}")
        return MutantOutcome(mutant, result)

    # Mutants of a kata with its own cluster run one at a time: their fault checks stop nodes.
    workers = 1 if kata.needs_own_cluster else max(1, jobs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        report.outcomes = list(pool.map(run_one, todo))
    report.seconds = time.monotonic() - started
    return report
