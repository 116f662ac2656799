"""Generate a reference solution's mutants: every change the operator catalog finds, one at a time.

Each mutant is the whole solution with exactly one change, written back as source with
`ast.unparse` (comments go; behaviour is all that is graded). Its id names the operator, the
enclosing function and a hash of the changed code, so it stays the same when unrelated lines
move: kata.yaml can declare a mutant equivalent by id, and a declaration whose mutant is no
longer generated is reported as stale.
"""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from grader.mutation.operators import OPERATORS, Change, Ctx


@dataclass(frozen=True)
class Mutant:
    id: str
    operator: str
    kind: str  # generic | kafka
    line: int
    function: str
    description: str
    source: str  # the whole mutated solution
    diff: str  # against the unparsed reference, a few lines


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, Ctx]]:
    """Every node with its place, in a fixed order (the same for the same source)."""
    def visit(node: ast.AST, ctx: Ctx):
        yield node, ctx
        function, func_node, quiet = ctx.function, ctx.func_node, ctx.in_message or _is_message(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            function = node.name if function == "<module>" else f"{function}.{node.name}"
            func_node = node if not isinstance(node, ast.ClassDef) else None
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        stmt_index = i if isinstance(child, ast.stmt) else None
                        yield from visit(child, Ctx(node, field, stmt_index, function, func_node, quiet))
            elif isinstance(value, ast.AST):
                yield from visit(value, Ctx(node, field, None, function, func_node, quiet))
    yield from visit(tree, Ctx(None, "", None, "<module>"))


MESSAGE_CALLS = {"print", "debug", "info", "warning", "error", "exception", "log"}


def _is_message(node: ast.AST) -> bool:
    """Code whose only effect is a text for people: mutating inside it changes no behaviour."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Raise):
        return False  # the raise itself matters; its arguments are handled below
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in MESSAGE_CALLS
    return False


def _sites(tree: ast.AST) -> list[tuple[int, str, int, str, Change, ast.AST, Ctx]]:
    """(node number, operator, change number, kind, change, node, ctx) for every change of every operator."""
    out = []
    for n, (node, ctx) in enumerate(_walk(tree)):
        for name, (kind, op) in OPERATORS.items():
            for k, change in enumerate(op(node, ctx)):
                out.append((n, name, k, kind, change, node, ctx))
    return out


def _apply(tree: ast.AST, node_no: int, change: Change) -> None:
    node, ctx = next(item for n, item in enumerate(_walk(tree)) if n == node_no)
    if change.swap is not None:
        siblings = getattr(ctx.parent, ctx.field)
        i = ctx.index
        siblings[i], siblings[i + 1] = siblings[i + 1], siblings[i]
        return
    if ctx.index is not None:  # a statement: replace it by zero or more statements
        siblings = getattr(ctx.parent, ctx.field)
        new = change.replacement if isinstance(change.replacement, list) else [change.replacement]
        new = [node if r is node else r for r in new]
        siblings[ctx.index:ctx.index + 1] = new
        if not siblings:
            siblings.append(ast.Pass())
        return
    value = getattr(ctx.parent, ctx.field)
    if isinstance(value, list):
        value[value.index(node)] = change.replacement
    else:
        setattr(ctx.parent, ctx.field, change.replacement)


def generate(solution: Path) -> list[Mutant]:
    text = solution.read_text(encoding="utf-8")
    original = ast.parse(text, filename=str(solution))
    reference = ast.unparse(original) + "\n"
    seen = {reference}
    mutants: list[Mutant] = []
    counts: dict[str, int] = {}
    for node_no, op_name, change_no, kind, change, node, ctx in _sites(original):
        tree = copy.deepcopy(original)
        # Changes were computed on `original`; recompute on the copy so replacements are its own nodes.
        copy_node, copy_ctx = next(item for n, item in enumerate(_walk(tree)) if n == node_no)
        copy_change = OPERATORS[op_name][1](copy_node, copy_ctx)[change_no]
        _apply(tree, node_no, copy_change)
        ast.fix_missing_locations(tree)
        try:
            source = ast.unparse(tree) + "\n"
            compile(source, str(solution), "exec")
        except (SyntaxError, ValueError, TypeError):
            continue  # e.g. a `break` that is no longer in a loop
        if source in seen:
            continue  # no change, or the same mutant another way
        seen.add(source)
        line = getattr(node, "lineno", None) or getattr(ctx.parent, "lineno", 0) or 0
        diff = "".join(list(difflib.unified_diff(reference.splitlines(keepends=True), source.splitlines(keepends=True),
                                                 f"a/{solution.name}", f"b/{solution.name}", n=1))[2:])
        base = f"{change.operator}:{ctx.function}:{change.description}"
        counts[base] = counts.get(base, 0) + 1
        digest = hashlib.sha1(f"{base}#{counts[base]}".encode()).hexdigest()[:6]
        mutants.append(Mutant(id=f"{change.operator}:{ctx.function}:{digest}", operator=change.operator, kind=kind,
                              line=line, function=ctx.function, description=change.description, source=source,
                              diff=diff))
    return mutants
