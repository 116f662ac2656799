"""Learners' work in progress must keep passing after a `git pull`: every stub's public API
(functions, classes and their methods, with parameter names, order, kinds and defaults)
equals its reference solution's, and equals the API recorded in tests/golden/stub_api.json.
A deliberate API change means updating that file, in a commit that says why (UPDATE_GOLDEN=1)."""

import ast
import json
import os
from pathlib import Path

import pytest
from conftest import ROOT

from grader.catalog import load_course

GOLDEN = Path(__file__).parent / "golden" / "stub_api.json"
KATAS = load_course(ROOT).katas


def _signature(fn: ast.FunctionDef) -> str:
    # Names, order, kinds and defaults are what a caller depends on; annotations are documentation.
    args = ast.parse(f"def f({ast.unparse(fn.args)}): pass").body[0].args
    for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if a is not None:
            a.annotation = None
    return f"({ast.unparse(args)})"


def public_api(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    api = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            api[node.name] = _signature(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            api[node.name] = f"class({', '.join(ast.unparse(b) for b in node.bases)})"
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_") or item.name == "__init__"):
                    api[f"{node.name}.{item.name}"] = _signature(item)
    return api


@pytest.mark.parametrize("kata", KATAS, ids=[k.id for k in KATAS])
def test_stub_and_solution_share_one_api(kata):
    stub, solution = public_api(kata.stub_path), public_api(kata.solution_path)
    missing = {name: sig for name, sig in stub.items() if solution.get(name) != sig}
    assert not missing, f"{kata.id}: the solution differs from the stub in {missing} (solution: " \
                        f"{ {n: solution.get(n) for n in missing} })"


def test_stub_apis_are_unchanged():
    current = {k.id: public_api(k.stub_path) for k in KATAS}
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    recorded = json.loads(GOLDEN.read_text())
    changed = {kid: {"recorded": recorded.get(kid), "now": api} for kid, api in current.items()
               if kid in recorded and recorded[kid] != api}
    assert not changed, f"stub APIs changed (learners' work in progress would break): {changed}"
