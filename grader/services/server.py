"""A server process this grader started for a kata (PostgreSQL, a Connect worker): where it
listens, its folder, and its log, which an infrastructure error quotes when it dies."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass
class ServerProcess:
    port: int
    workdir: Path
    process: subprocess.Popen | None = None
    LOG_NAME: ClassVar[str] = "server.log"
    WHAT: ClassVar[str] = "server"

    @property
    def log_path(self) -> Path:
        return self.workdir / self.LOG_NAME

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return f"(no {self.WHAT} log was written)"
