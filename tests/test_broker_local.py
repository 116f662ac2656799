"""The local provider for real: loopback only, no JVM left behind, and infrastructure
faults reported as such (exit 3), never as the learner's failure."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import OK_COURSE, kafka_jvms, run_grade

from grader.broker import jars
from grader.broker.local import start_local

pytestmark = pytest.mark.broker
HANG = str(OK_COURSE / "impls" / "hang.py")


def listening_addresses(port: int) -> set[str]:
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    return {cols[3].rsplit(":", 1)[0] for cols in (line.split() for line in out.splitlines())
            if cols[3].rsplit(":", 1)[1] == str(port)}


def test_listens_on_loopback_only_and_stops_cleanly():
    broker = start_local(lambda m: None)
    try:
        node = broker.nodes[0]
        for port in (node.port, node.controller_port):
            addresses = listening_addresses(port)
            assert addresses, f"nothing listens on {port}"
            assert addresses <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, addresses
        assert broker.alive()
        pid = node.process.pid
    finally:
        broker.stop()
    assert not broker.alive()
    assert not any(line.split()[0] == str(pid) for line in kafka_jvms())


class GradeProcess:
    """`grade` in the background, with its stderr collected line by line."""

    def __init__(self, *args, env_extra=None, sigint_ignored=False):
        env = {**os.environ, "NO_COLOR": "1", **(env_extra or {})}
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        # sigint_ignored: started as a non-interactive shell starts a background job (`cmd &`).
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        self.proc = subprocess.Popen([sys.executable, "-m", "grader", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ignore)
        self.lines: list[str] = []
        # The only reader of stderr (a second reader, e.g. communicate(), would split the text).
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stderr.readline, "")),
                                       daemon=True)
        self.reader.start()

    def finish(self, timeout: float) -> str:
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no line with {text!r}: {''.join(self.lines)}"
            time.sleep(0.05)

    def broker_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
        return [int(c[0]) for c in (line.split(None, 2) for line in out.splitlines()[1:])
                if c[1] == str(self.proc.pid) and "kafka.Kafka" in c[2]]


def test_killing_the_broker_mid_run_exits_3_and_blames_the_broker(tmp_path):
    run = GradeProcess("kata-01", "--course", str(OK_COURSE), "--file", HANG, "--timeout", "15", "--broker", "local",
                       env_extra={"KAFKA_KATAS_DATA": str(tmp_path / "data")})
    run.wait_for_line("Running the hidden checks")
    pids = run.broker_pids()
    assert pids
    os.kill(pids[0], signal.SIGKILL)
    stderr = run.finish(timeout=120)
    assert run.proc.returncode == 3, stderr
    assert "The Kafka broker died during the run" in stderr
    assert "not a problem with your code" in stderr
    assert "Next: run `grade kata-01` again." in stderr
    assert not (tmp_path / "data").exists(), "an infrastructure failure must not touch the learner's progress"


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "background-job"])
def test_ctrl_c_stops_the_broker_and_the_learner_code(sigint_ignored):
    run = GradeProcess("kata-01", "--course", str(OK_COURSE), "--file", HANG, "--timeout", "60", "--broker", "local",
                       sigint_ignored=sigint_ignored)
    run.wait_for_line("Running the hidden checks")
    pids = run.broker_pids()
    run.proc.send_signal(signal.SIGINT)
    stderr = run.finish(timeout=60)
    assert run.proc.returncode == 130
    assert "Interrupted" in stderr
    alive = [p for p in pids if Path(f"/proc/{p}").exists()]
    assert not alive, f"broker JVM(s) {alive} outlived Ctrl-C"


def _fake_java(tmp_path: Path, version_line: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return home


def test_old_java_is_an_infrastructure_error(tmp_path):
    home = _fake_java(tmp_path, 'openjdk version "11.0.22" 2024-01-16')
    result = run_grade("kata-01", "--course", str(OK_COURSE), "--broker", "local", env={"JAVA_HOME": str(home)})
    assert result.returncode == 3
    assert "Java 11 was found" in result.stderr and "needs Java 17 or newer" in result.stderr
    assert "Next: install a JDK 17+" in result.stderr


def test_missing_java_is_an_infrastructure_error(tmp_path):
    result = run_grade("kata-01", "--course", str(OK_COURSE), "--broker", "local",
                       env={"JAVA_HOME": str(tmp_path / "no-jdk")})
    assert result.returncode == 3
    assert "Java was not found" in result.stderr
    assert "--bootstrap-servers" in result.stderr


def _path_without_mvn(tmp_path: Path, fake_mvn: str | None = None) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("java", "sh"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    if fake_mvn:
        (bin_dir / "mvn").write_text(fake_mvn)
        (bin_dir / "mvn").chmod(0o755)
    return str(bin_dir)


def test_no_mvn_and_no_cache_is_an_infrastructure_error(tmp_path):
    env = {"PATH": _path_without_mvn(tmp_path), "KAFKA_KATAS_CACHE": str(tmp_path / "cache")}
    result = run_grade("kata-01", "--course", str(OK_COURSE), "--broker", "local", env=env)
    assert result.returncode == 3
    assert "Maven (`mvn`) was not found" in result.stderr
    assert "KAFKA_HOME" in result.stderr


def test_failed_resolution_says_what_mvn_said(tmp_path):
    fake = "#!/bin/sh\necho '[ERROR] Could not transfer artifact org.apache.kafka:kafka_2.13' ; exit 1\n"
    env = {"PATH": _path_without_mvn(tmp_path, fake), "KAFKA_KATAS_CACHE": str(tmp_path / "cache")}
    result = run_grade("kata-01", "--course", str(OK_COURSE), "--broker", "local", env=env)
    assert result.returncode == 3
    assert "`mvn` could not resolve the Kafka" in result.stderr
    assert "Could not transfer artifact" in result.stderr
    assert not (tmp_path / "cache" / f"kafka-{jars.KAFKA_VERSION}" / "lib").exists()


def test_corrupt_jar_cache_is_detected_and_fetched_again(tmp_path):
    source = jars.jar_dir()
    assert jars.cache_complete(source), "the session's broker should have filled the cache"
    cache = tmp_path / "cache"
    target = cache / f"kafka-{jars.KAFKA_VERSION}" / "lib"
    shutil.copytree(source, target)
    victim = next(target.glob("kafka-clients-*.jar"))
    victim.write_bytes(b"")
    assert not jars.cache_complete(target)
    messages = []
    os.environ["KAFKA_KATAS_CACHE"] = str(cache)
    try:
        jars.kafka_classpath(messages.append)
    finally:
        del os.environ["KAFKA_KATAS_CACHE"]
    assert any("Downloading" in m for m in messages)
    assert jars.cache_complete(target) and victim.stat().st_size > 0


def test_kafka_home_without_jars_is_explained(tmp_path):
    result = run_grade("kata-01", "--course", str(OK_COURSE), "--broker", "local",
                       env={"KAFKA_HOME": str(tmp_path)})
    assert result.returncode == 3
    assert "holds no kafka_2.13-*.jar" in result.stderr


def test_a_port_taken_meanwhile_is_retried_on_other_ports(monkeypatch):
    """The race between probing a free port and the JVM binding it, made to happen for real."""
    import socket

    from grader.broker import local

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_ports = local.free_ports
    calls = {"n": 0}

    def first_port_taken(count):
        calls["n"] += 1
        ports = real_free_ports(count)
        return [taken, *ports[1:]] if calls["n"] == 1 else ports

    monkeypatch.setattr(local, "free_ports", first_port_taken)
    messages = []
    broker = local.start_local(messages.append)
    try:
        assert broker.alive()
        assert broker.nodes[0].port != taken
        assert any("A port was taken meanwhile" in m for m in messages)
    finally:
        broker.stop()
        squatter.close()


def test_a_sigkilled_grader_leaves_no_broker_and_no_learner_code():
    """No cleanup code runs after SIGKILL: the kernel must take the children down (setpriv --pdeathsig)."""
    run = GradeProcess("kata-01", "--course", str(OK_COURSE), "--file", HANG, "--timeout", "60", "--broker", "local")
    run.wait_for_line("Running the hidden checks")
    # The line comes just before the check run is spawned: wait for both children to exist.
    deadline = time.monotonic() + 15
    while True:
        out = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
        children = [int(c[0]) for c in (line.split(None, 2) for line in out.splitlines()[1:])
                    if c[1] == str(run.proc.pid)]
        if len(children) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(children) >= 2  # the broker JVM and the check run
    run.proc.kill()
    run.proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not alive, f"children {alive} outlived a SIGKILLed grader"


def test_cluster_ids_never_start_with_a_dash():
    """StorageTool reads `-t -xyz…` as an option; 1 id in 64 used to start with "-" (a fresh cache then
    failed every start: the template's id is kept)."""
    from grader.broker.addresses import kafka_uuid

    ids = [kafka_uuid() for _ in range(3000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)


def test_a_stored_template_id_that_starts_with_a_dash_is_replaced(tmp_path, monkeypatch):
    from grader.broker import warmup

    monkeypatch.setenv("KAFKA_KATAS_CACHE", str(tmp_path))
    id_file = warmup.template_dir(1).parent / warmup.TEMPLATE_CLUSTER_ID_FILE
    id_file.parent.mkdir(parents=True)
    id_file.write_text("-badidbadidbadidbadid1")
    assert warmup.template_cluster_id() is None
    formatted = []
    warmup.ensure_template(lambda d, cid: formatted.append(cid), 1, "goodidgoodidgoodidgood")
    assert formatted == ["goodidgoodidgoodidgood"] and warmup.template_cluster_id() == "goodidgoodidgoodidgood"


def test_free_ports_are_distinct():
    """One node's listeners each need a port of their own: ports are held until all are picked."""
    from grader.broker.addresses import free_ports

    for _ in range(50):
        ports = free_ports(12)
        assert len(set(ports)) == 12

