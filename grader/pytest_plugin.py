"""The pytest plugin every hidden check runs under (loaded with `-p grader.pytest_plugin`).

It gives checks their fixtures (`kafka`, `impl`, `impl_path`, `bootstrap_servers`)
and writes a machine-readable verdict per check to the verdict pipe the runner handed
it (a file descriptor no learner process inherits), after every check, so a run that
is killed at its timeout still reports what finished.

This process (the judge) never imports learner code: `impl` is a proxy to the module
loaded in a learner host process (grader/kit/learner.py, grader/host/).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from grader import clientroute, judge_setup
from grader.kit import KafkaKit, pictures
from grader.kit.learner import LearnerProcessDied, load_learner_module

__all__ = ["load_learner_module"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kafka-katas")
    group.addoption("--kata-impl", help="path of the learner's file (stub or solution) under test")
    group.addoption("--kafka-bootstrap", help="bootstrap servers of the broker to check against")
    group.addoption("--kata-verdict-fd", type=int, help="write per-check verdicts (JSON lines) to this pipe")
    group.addoption("--kata-host", help="JSON file: how to start the learner host (grader/host/sandbox.py)")
    group.addoption("--kata-run-id", default="", help="prefix for topic/group names of this run")
    group.addoption("--kata-cluster", help="node-control file of a local cluster (katas with brokers: 3 / faults)")
    group.addoption("--kata-services", help="JSON file: addresses of the kata's services (postgres, connect)")
    group.addoption("--kata-client", help="JSON file: client properties and name prefix of a shared cluster")
    group.addoption("--kata-only", help="run only the check of this exact name (validation of a known-bad fixture)")


class _Recorder:
    def __init__(self, fd: int | None):
        self.fd = fd

    def write(self, event: dict) -> None:
        if self.fd is None:
            return
        data = (json.dumps(event) + "\n").encode("utf-8")
        while data:
            data = data[os.write(self.fd, data):]


_RECORDER = _Recorder(None)
_DOCS: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    global _RECORDER
    fd = config.getoption("--kata-verdict-fd")
    if fd is not None:
        os.set_inheritable(fd, False)  # never passed on to a learner host or any other child
    _RECORDER = _Recorder(fd)
    judge_setup.configure(config, _RECORDER.write)


def pytest_sessionstart(session: pytest.Session) -> None:
    judge_setup.start_host(session.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # An exact name, unlike -k, which would also select every check whose name merely contains it.
    only = config.getoption("--kata-only")
    if only:
        chosen = {i for i in items if only in (i.name, getattr(i, "originalname", None))}
        keep = [i for i in items if i in chosen]
        config.hook.pytest_deselected(items=[i for i in items if i not in chosen])
        items[:] = keep


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    # Every check that will run, so a run that ends early can say which checks it never reached.
    _RECORDER.write({"event": "collected", "nodeids": [i.nodeid for i in session.items],
                     "docs": {i.nodeid: _DOCS.get(i.nodeid, "") for i in session.items}})


def pytest_itemcollected(item: pytest.Item) -> None:
    # The check's docstring says what was checked; the report shows it.
    obj = getattr(item, "obj", None)
    _DOCS[item.nodeid] = (getattr(obj, "__doc__", None) or "").strip()


def pytest_runtest_logstart(nodeid: str, location) -> None:
    # The runner reads the last "start" to say which check was running at a timeout.
    _RECORDER.write({"event": "start", "nodeid": nodeid})
    pictures.take()  # nothing a previous check attached belongs to this one


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    # The pictures a check attached go with its failure only; a passing phase drops them.
    attached = pictures.take()
    if report.failed:
        report.kata_pictures = attached
    excinfo = call.excinfo
    if report.failed and excinfo is not None and not _is_teaching_failure(excinfo.value):
        # Never show the hidden check's source: only the exception and the learner's own frames.
        report.kata_message = _learner_traceback(excinfo, item.config.getoption("--kata-impl"))
    if report.failed:
        message = getattr(report, "kata_message", None) or _message(report)
        note = clientroute.authorization_note(message)
        if note:  # on a shared cluster: a name outside the run's prefix, said plainly
            report.kata_message = message + "\n" + note


def _is_teaching_failure(exc: BaseException) -> bool:
    return isinstance(exc, pytest.fail.Exception) and not getattr(exc, "pytrace", True)


def _learner_traceback(excinfo, impl: str | None) -> str:
    """The exception and the learner's own frames (sent by the learner host); never the check's source."""
    exc = excinfo.value
    frames = getattr(exc, "learner_frames", None) or []
    headline = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if isinstance(exc, pytest.fail.Exception):  # pytest.fail with a trace: the message is the point
        return str(exc)
    if isinstance(exc, LearnerProcessDied):
        return str(exc)
    if not frames:
        return (f"The check stopped with {headline}.\nYour code was not on the stack; this often means it "
                "returned something unexpected, or left the broker in a state the check could not read.")
    where = "".join(f"  {name}, line {line}, in {func}\n    {code}\n" for name, line, func, code in frames[-5:])
    return f"Your code raised {headline}\n{where}".rstrip()


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when in ("setup", "teardown") and (report.failed or report.skipped)):
        _RECORDER.write({
            "event": "result", "nodeid": report.nodeid, "name": report.nodeid.split("::")[-1],
            "when": report.when, "outcome": report.outcome, "doc": _DOCS.get(report.nodeid, ""),
            "message": (getattr(report, "kata_message", None) or _message(report))
            if report.failed or report.skipped else "",
            "output": report.capstdout[-4000:] + report.capstderr[-4000:],
            "duration": round(report.duration, 3),
            "pictures": getattr(report, "kata_pictures", []),
        })


_EXIT = {"status": None}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # Every verdict is on disk by now. Learner code may have left a consumer unclosed
    # or a non-daemon thread running, which would hang interpreter shutdown until the
    # timeout and turn a finished run into a "timed out" one: leave at once instead.
    judge_setup.close()
    if config.getoption("--kata-verdict-fd", None) is not None and _EXIT["status"] is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT["status"])


def pytest_collectreport(report) -> None:
    if report.failed:
        _RECORDER.write({"event": "collect-error", "nodeid": report.nodeid,
                         "message": str(report.longrepr)[-4000:]})


def _message(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # skip: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    text = str(longrepr)
    # pytest.fail(..., pytrace=False) gives exactly the teaching message; keep it whole.
    if crash is not None and "Failed: " in crash.message and "Traceback" not in text:
        return crash.message.removeprefix("Failed: ")
    return text[-6000:]


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config):
    """Control of the local cluster's nodes and, for fault katas, one FaultProxy per node."""
    path = pytestconfig.getoption("--kata-cluster")
    if not path:
        pytest.fail("This check needs a local cluster it can control, and the grader did not start one. "
                    "Run it with `grade KATA` (the kata's broker settings ask for it).", pytrace=False)
    from grader.kit.cluster import ClusterControl
    from grader.kit.faultproxy import FaultProxy

    control = ClusterControl(Path(path))
    control.proxies = {}
    for node_id in control.node_ids:
        if control.advertised_port(node_id) != control.port(node_id):
            control.proxies[node_id] = FaultProxy(control.advertised_port(node_id), control.port(node_id))
    yield control
    for proxy in control.proxies.values():
        proxy.close()


@pytest.fixture(scope="session")
def bootstrap_servers(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> str:
    if pytestconfig.getoption("--kata-cluster"):
        control = request.getfixturevalue("cluster")
        if control.proxies:  # clients go through the proxies, as the brokers advertise
            return ",".join(f"127.0.0.1:{control.advertised_port(n)}" for n in control.node_ids)
    value = pytestconfig.getoption("--kafka-bootstrap") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not value:
        pytest.exit("no broker given: pass --kafka-bootstrap (the grader does this for you)", returncode=3)
    return value


def _service_url(pytestconfig: pytest.Config, name: str) -> str:
    path = pytestconfig.getoption("--kata-services")
    urls = json.loads(Path(path).read_text()) if path else {}
    if name not in urls:
        pytest.fail(f"This check needs the {name} service, and the grader did not start one. Add "
                    f"`services: [{name}]` to the kata's kata.yaml and run it with `grade KATA`.", pytrace=False)
    return urls[name]


@pytest.fixture(scope="session")
def postgres_url(pytestconfig: pytest.Config) -> str:
    """postgresql://USER@HOST:PORT/DB of the kata's PostgreSQL (logical decoding on)."""
    return _service_url(pytestconfig, "postgres")


@pytest.fixture
def postgres(postgres_url: str):
    """A psycopg 3 connection in autocommit mode: every statement is its own committed transaction."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def connect_url(pytestconfig: pytest.Config) -> str:
    """http://HOST:PORT of the kata's Kafka Connect worker (REST API)."""
    return _service_url(pytestconfig, "connect")


@pytest.fixture(scope="session")
def impl_path(pytestconfig: pytest.Config) -> Path:
    value = pytestconfig.getoption("--kata-impl")
    if not value:
        pytest.exit("no learner file given: pass --kata-impl (the grader does this for you)", returncode=2)
    return Path(value).resolve()


@pytest.fixture
def impl(impl_path: Path):
    """The learner's module: a proxy to a fresh load of the learner's file in the learner host.

    Loading by path (not by import name) means a learner's `producer.py` can never
    shadow a library module, and two katas' files never collide.
    """
    return load_learner_module(impl_path)


@pytest.fixture
def kafka(bootstrap_servers: str, pytestconfig: pytest.Config, request: pytest.FixtureRequest):
    run_id = pytestconfig.getoption("--kata-run-id") or uuid.uuid4().hex[:6]
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{run_id}-{request.node.name[:30]}".replace("_", "-"))
    yield kit
    kit.close()
