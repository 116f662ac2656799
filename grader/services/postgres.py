"""A private PostgreSQL for CDC katas: loopback, a free port, logical decoding on.

`initdb` runs once into a template in the cache (about a second); each run copies the
template into a fresh directory and starts `postgres` there, so no run sees another's rows,
slots or publications. PostgreSQL refuses to run as root: as root the server runs as the
unprivileged `postgres` user (Debian's package creates it) through `setpriv`, which also
ties the server to the grader's life (`--pdeathsig`, see grader/proc.py).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from grader import proc as proc_guard
from grader.broker.addresses import free_port
from grader.broker.base import Progress
from grader.broker.jars import cache_root
from grader.errors import InfraError
from grader.services.server import ServerProcess

USER = "kk"  # the superuser initdb creates; trust auth on loopback only
DATABASE = "postgres"
START_TIMEOUT_S = 30.0
RUN_AS = "postgres"  # the unprivileged account used when the grader runs as root
# Logical decoding for Debezium; slots and senders for several connectors sharing one server.
SETTINGS = {"wal_level": "logical", "max_replication_slots": "20", "max_wal_senders": "20",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "listen_addresses": "127.0.0.1", "unix_socket_directories": "", "shared_buffers": "16MB"}
INSTALL_HINT = ("install PostgreSQL (`sudo apt-get install postgresql`), or point the grader at your own "
                "server with `--postgres-url postgresql://USER@HOST:PORT/DB` (env KAFKA_KATAS_POSTGRES_URL), "
                "or run the compose `cdc` profile (docker-compose.yml).")


def bin_dir() -> Path:
    """The directory of `initdb`/`postgres`: PATH first, then Debian's versioned directory."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise InfraError("PostgreSQL was not found (no `initdb`/`postgres` on the PATH or in /usr/lib/postgresql). "
                     "This kata streams changes out of a PostgreSQL database.", next_step=INSTALL_HINT)


def _as_owner(cmd: list[str]) -> list[str]:
    """cmd run unprivileged when we are root (the keeper's pdeathsig guard goes on top, see kept())."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise InfraError("The grader runs as root, PostgreSQL refuses root, and `setpriv` (util-linux) "
                         "is missing to drop privileges.", next_step="run the grader as a normal user.")
    return [setpriv, f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", *cmd]



def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{RUN_AS}:{RUN_AS}", str(path)], check=True)


def template_dir() -> Path:
    return cache_root() / f"postgres-{bin_dir().parent.name}-template"


def ensure_template(progress: Progress) -> Path:
    """The initdb'd template, made once; a half-made one is never used (rename is the commit)."""
    template = template_dir()
    if (template / "PG_VERSION").is_file():
        return template
    progress("Preparing a PostgreSQL template database (first run only, about 2 s)…")
    template.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="kk-pg-initdb-"))
    _chown(partial)
    data = partial / "data"
    initdb = [str(bin_dir() / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "--encoding=UTF8",
              "--no-sync", "--locale=C"]
    proc = subprocess.run(proc_guard.guarded(_as_owner(initdb)),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise InfraError(f"`initdb` failed (exit {proc.returncode}).", detail=(proc.stdout + proc.stderr)[-2000:],
                         next_step="check the PostgreSQL installation (`initdb --version`), then run again.")
    with (data / "postgresql.auto.conf").open("a") as fh:
        fh.writelines(f"{k} = '{v}'\n" for k, v in SETTINGS.items())
    with (data / "pg_hba.conf").open("a") as fh:  # Debezium connects for replication too
        fh.write("host replication all 127.0.0.1/32 trust\n")
    shutil.rmtree(template, ignore_errors=True)
    shutil.move(str(data), str(template))
    shutil.rmtree(partial, ignore_errors=True)
    return template


@dataclass
class Postgres(ServerProcess):
    LOG_NAME: ClassVar[str] = "postgres.log"
    WHAT: ClassVar[str] = "PostgreSQL"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # "fast" shutdown (no waiting for clients) to the group: postgres and its keeper, which waits for it.
            # A clean stop also removes its shared memory, which a SIGKILL would leave behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._remove_leftover_segment()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _remove_leftover_segment(self) -> None:
        """A postmaster that was killed (not shut down) leaves its small SysV segment behind; postmaster.pid
        names it (last line: key and id). A clean shutdown removed it already (ipcrm then finds nothing)."""
        try:
            shmid = (self.workdir / "data" / "postmaster.pid").read_text().splitlines()[6].split()[1]
        except (OSError, IndexError):
            return
        if shmid.isdigit():
            subprocess.run(["ipcrm", "-m", shmid], capture_output=True, timeout=10)


def start_postgres(progress: Progress) -> Postgres:
    template = ensure_template(progress)
    workdir = Path(tempfile.mkdtemp(prefix="kk-pg-"))
    data = workdir / "data"
    shutil.copytree(template, data, symlinks=True)
    _chown(workdir)
    data.chmod(0o700)  # postgres refuses a data directory others can read
    server = Postgres(port=free_port(), workdir=workdir)
    progress(f"Starting PostgreSQL on 127.0.0.1:{server.port}…")
    log = server.log_path.open("w")
    server.process = subprocess.Popen(
        proc_guard.kept(_as_owner([str(bin_dir() / "postgres"), "-D", str(data), "-p", str(server.port)])),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Postgres) -> None:
    pg_isready = bin_dir() / "pg_isready"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise InfraError("PostgreSQL exited while starting.", detail=tail,
                             next_step="read the log above; then run the same command again.")
        with contextlib.suppress(subprocess.TimeoutExpired):
            if subprocess.run([str(pg_isready), "-q", "-h", "127.0.0.1", "-p", str(server.port)],
                              timeout=5).returncode == 0:
                return
        time.sleep(0.05)
    raise InfraError(f"PostgreSQL did not accept connections within {START_TIMEOUT_S:.0f} s.",
                     detail=server.log_path.read_text(errors="replace")[-2000:],
                     next_step="the machine may be overloaded; run the same command again.")
