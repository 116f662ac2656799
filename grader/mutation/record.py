"""The mutation record: each kata's last measured score, with a fingerprint of what it measured
(the solution, the checks and kata.yaml). CI re-runs the sweep only for katas whose fingerprint
changed since the record (the whole sweep is too long for CI's budget); benchmarks/mutation.py
--record writes it. A change to the operator catalog itself calls for a whole new sweep by hand."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from grader.catalog import Kata

RECORD = Path("docs") / "mutation-record.json"


def fingerprint(kata: Kata) -> str:
    digest = hashlib.sha256()
    files = [kata.solution_path, kata.yaml_path, *sorted(p for p in kata.checks_dir.rglob("*") if p.is_file())]
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
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
