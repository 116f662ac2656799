"""The crash point after a SQLite commit (grader/dbcrash.py), in a real process that SIGKILLs itself:
it lands between two transactions of one step, and never inside one."""

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

SCRIPT = textwrap.dedent("""
    import sqlite3, sys
    from pathlib import Path
    from grader import dbcrash
    dbcrash.install(dbcrash.CommitCrash(int(sys.argv[1]), Path(sys.argv[2])))
    db = sqlite3.connect(sys.argv[3], isolation_level=None if sys.argv[4] == "autocommit" else "")
    db.executescript("CREATE TABLE IF NOT EXISTS totals(n); CREATE TABLE IF NOT EXISTS applied(n);")
    for i in range(6):
        if sys.argv[4] == "together":
            with db:
                db.execute("INSERT INTO totals VALUES (?)", (i,))
                db.execute("INSERT INTO applied VALUES (?)", (i,))
        elif sys.argv[4] == "apart":
            with db:
                db.execute("INSERT INTO totals VALUES (?)", (i,))
            with db:
                db.execute("INSERT INTO applied VALUES (?)", (i,))
        else:  # autocommit: every statement is its own transaction
            db.execute("INSERT INTO totals VALUES (?)", (i,))
            db.execute("INSERT INTO applied VALUES (?)", (i,))
    db.close()
""")


def run(tmp_path, after: int, mode: str):
    db_path, report = tmp_path / "model.db", tmp_path / "crash.json"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(after), str(report), str(db_path), mode],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    with sqlite3.connect(db_path) as db:
        counts = [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("totals", "applied")]
    return proc, counts, json.loads(report.read_text()) if report.exists() else None


@pytest.mark.parametrize("after", [1, 3, 6])
def test_one_transaction_per_step_survives_the_crash_whole(tmp_path, after):
    proc, counts, crash = run(tmp_path, after, "together")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert counts == [after, after]
    assert crash["commits"] == after


@pytest.mark.parametrize("mode", ["apart", "autocommit"])
def test_the_crash_lands_between_two_transactions_of_one_step(tmp_path, mode):
    proc, counts, crash = run(tmp_path, 3, mode)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert counts == [2, 1]  # the second step's totals are committed, its "applied" row is not
    assert "applied" in crash["next"] or crash["next"] == "the SQL statement 'BEGIN '"


def test_no_crash_before_the_nth_commit(tmp_path):
    proc, counts, crash = run(tmp_path, 13, "apart")  # 12 commits in all: the script ends on its own
    assert proc.returncode == 0, proc.stderr
    assert counts == [6, 6] and crash is None
