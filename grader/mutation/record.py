"""The mutation record: each kata's last measured score, with a fingerprint of what it measured
(the solution, the checks and kata.yaml). CI re-runs the sweep only for katas whose fingerprint
changed since the record (the whole sweep is too long for CI's budget); benchmarks/mutation.py
--record writes it. A change to the operator catalog itself calls for a whole new sweep by hand."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from grader.catalog import Kata

RECORD = Path("docs") / "mutation-record.json"


def _content(path: Path) -> bytes:
    """What a file does: Python as its AST without import statements and comments (moving a helper
    to another module of the kit changes no check), anything else byte for byte."""
    data = path.read_bytes()
    if path.suffix != ".py":
        return data
    try:
        tree = ast.parse(data)
    except SyntaxError:
        return data
    tree.body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    return ast.dump(tree).encode()


def fingerprint(kata: Kata) -> str:
    digest = hashlib.sha256()
    files = [kata.solution_path, kata.yaml_path, *sorted(p for p in kata.checks_dir.rglob("*") if p.is_file())]
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(path.name.encode())
        digest.update(_content(path))
    return digest.hexdigest()[:16]


def load(root: Path) -> dict:
    path = root / RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def changed_katas(root: Path, katas: list[Kata]) -> list[Kata]:
    record = load(root)
    return [k for k in katas if record.get(k.id, {}).get("fingerprint") != fingerprint(k)]


def write(root: Path, katas: dict[str, Kata], validate_json: dict) -> None:
    record = load(root)
    for entry in validate_json["katas"]:
        m = entry.get("mutation")
        if not m or entry["kata"] not in katas:
            continue
        record[entry["kata"]] = {"fingerprint": fingerprint(katas[entry["kata"]]), "generated": m["generated"],
                                 "equivalent": m["equivalent"], "killed": m["killed"], "run": m["run"],
                                 "score": m["score"], "ok": entry["ok"]}
    (root / RECORD).write_text(json.dumps(dict(sorted(record.items())), indent=2) + "\n")
