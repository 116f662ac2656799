"""A crash point right after a SQLite transaction commits, for ChildRun (inside the learner host).

"Apply each event in one transaction" is a contract about what survives a crash *between* two
statements of the learner's code, which no callback the check hands over can reach: a projector
that commits the totals in one transaction and its "already applied" proof in the next is only
wrong when the process dies between those two commits. So the child instruments sqlite3 before
the learner's module is loaded: every connection it opens counts the transactions that changed
rows (sqlite's total_changes, once the connection is out of its transaction again), and the
first time the learner's code regains control after the N-th such commit (its next SQL
statement on any connection, a process() call, or a close()) the process SIGKILLs itself.
A correct apply step survives that at any N; two commits per event do not, for odd N.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import weakref
from pathlib import Path


class CommitCrash:
    def __init__(self, after: int, report: Path):
        self.after, self.report = after, report
        self.commits = 0
        self._seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> total_changes counted

    def opened(self, conn: sqlite3.Connection) -> None:
        self._seen[conn] = conn.total_changes

    def control_point(self, where: str) -> None:
        """The learner's code has control again: count what was committed since, crash if it is time."""
        for conn in list(self._seen.keys()):
            try:
                changes, open_tx = conn.total_changes, conn.in_transaction
            except sqlite3.ProgrammingError:  # closed: close() below counted it
                continue
            if changes > self._seen[conn] and not open_tx:
                self._seen[conn] = changes
                self.commits += 1
        if self.commits >= self.after:
            tmp = self.report.with_name(self.report.name + ".tmp")
            tmp.write_text(json.dumps({"commits": self.commits, "next": where[:200]}))
            tmp.replace(self.report)  # atomic: the check never reads half a file
            os.kill(os.getpid(), signal.SIGKILL)


def install(crash: CommitCrash) -> None:
    """Make every sqlite3.connect() of the learner's code (also through sqlite3.dbapi2, as SQLAlchemy
    calls it) return a counting connection."""
    real_connect = sqlite3.connect

    def connect(*args, factory=sqlite3.Connection, **kwargs):
        conn = real_connect(*args, factory=_counting(factory, crash), **kwargs)
        crash.opened(conn)
        return conn

    sqlite3.connect = connect
    sqlite3.dbapi2.connect = connect


def _counting(factory: type, crash: CommitCrash) -> type:
    class Counting(factory):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Called as each statement starts: the moment after a COMMIT is the start of what follows it.
            self.set_trace_callback(lambda sql: crash.control_point(f"the SQL statement {sql!r}"))

        def close(self):
            crash.control_point("closing the connection")
            super().close()

    return Counting
