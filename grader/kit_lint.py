"""The rule that keeps hidden checks on the check kit: a check imports nothing of the grader
but `grader.kit` (the engine — runner, catalog, results, progress, broker, host — is not their API)."""

from __future__ import annotations

import ast
from pathlib import Path


def grader_imports_outside_kit(checks_dir: Path) -> list[str]:
    """One problem per import of a grader module other than grader.kit in the kata's checks."""
    problems = []
    for path in sorted(Path(checks_dir).rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=str(path))
        except SyntaxError:
            continue  # the checks' own collection reports it
        for node in ast.walk(tree):
            for name in _imported(node):
                if name == "grader" or (name.startswith("grader.") and not _in_kit(name)):
                    problems.append(f"{path}:{node.lineno}: imports {name}; checks use only grader.kit "
                                    "(KafkaKit, explain, ChildRun, load_learner_module, commit, cluster, "
                                    "faultproxy). Next: import it from grader.kit.")
    return problems


def _in_kit(name: str) -> bool:
    return name == "grader.kit" or name.startswith("grader.kit.")


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "grader":
            return [f"grader.{alias.name}" for alias in node.names]
        return [node.module]
    return []
