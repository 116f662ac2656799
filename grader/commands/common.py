"""Options and helpers shared by several commands."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import click

from grader import broker as brokers
from grader import clientconfig, console, services, shared_run
from grader.catalog import Course, find_course_root, load_course
from grader.errors import UsageError


def course_option(f):
    return click.option("--course", "course_dir", type=click.Path(file_okay=False, path_type=Path),
                        help="Course folder (holds katas/course.yaml). Default: found from the current folder.")(f)


def broker_options(f):
    f = click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", metavar="HOST:PORT",
                     help="Use an existing Kafka cluster (also KAFKA_BOOTSTRAP_SERVERS).")(f)
    f = click.option("--broker", "broker_mode", type=click.Choice(brokers.MODES), default="auto", show_default=True,
                     help="Where the broker comes from: auto = external if given, else Docker if its daemon "
                     "answers, else a local JVM broker.")(f)
    return f


def shared_cluster_options(f):
    """--client-config FILE and --prefix: grade on a shared, secured cluster (docs/classroom.md)."""
    @functools.wraps(f)
    def wrapper(*args, client_config=None, name_prefix=None, **kwargs):
        clientconfig.activate(clientconfig.load(client_config, name_prefix))
        try:
            return f(*args, **kwargs)
        finally:
            if clientconfig.active() is not None:  # groups whose killed members outlived their run
                left = shared_run.finish(console.progress)
                if left:
                    console.err.print(f"Left on the cluster (delete them later): consumer groups {', '.join(left)}.")
            clientconfig.activate(None)

    wrapper = click.option("--prefix", "name_prefix", envvar=clientconfig.ENV_PREFIX, metavar="PREFIX",
                           help="Every topic, group and transactional id of the run starts with this (default "
                           f"{clientconfig.DEFAULT_PREFIX!r}); what the run made is deleted after it. "
                           f"Also {clientconfig.ENV_PREFIX}.")(wrapper)
    return click.option("--client-config", "client_config", envvar=clientconfig.ENV_FILE, metavar="FILE",
                        type=click.Path(dir_okay=False, path_type=Path),
                        help="librdkafka properties (security.protocol, sasl.*, ssl.*) for every client of the "
                        f"checks and of the graded code: your own secured cluster. Also {clientconfig.ENV_FILE}."
                        )(wrapper)


def quiet_option(f):
    return click.option("-q", "--quiet", is_flag=True, help="Only the verdict, no progress lines.")(f)


def ascii_option(f):
    return click.option("--ascii", "ascii_only", is_flag=True,
                        help="Draw pictures with ASCII characters only (as when the terminal is not UTF-8).")(f)


def open_course(course_dir: Path | None) -> Course:
    root = course_dir.resolve() if course_dir else find_course_root()
    return load_course(root)


def refuse_in_release(course: Course, command: str, next_step: str) -> None:
    """A student release (`grade release`) has no solutions, known-bad mistakes or hidden checks: the
    commands that need them say so instead of failing on a missing file."""
    if course.is_release:
        raise UsageError(f"{command} is an instructor command, and this is a student release of the course "
                         "(it holds no reference solutions, known-bad mistakes or hidden checks).",
                         next_step=next_step)


@contextlib.contextmanager
def obtain_broker(mode: str, bootstrap_servers: str | None):
    with console.spinner("Getting a Kafka broker ready…"):
        broker = brokers.start(mode, bootstrap_servers, console.progress)
    try:
        yield broker
    finally:
        broker.stop()


def _complete_kata(ctx, param, incomplete):
    """Shell completion of kata names (see README: eval "$(_GRADE_COMPLETE=bash_source grade)")."""
    try:
        course = open_course(ctx.params.get("course_dir"))
    except Exception:
        return []
    names = [n for k in course.katas for n in (k.id, k.slug)]
    return [n for n in names if n.startswith(incomplete)]


def kata_argument(f):
    return click.argument("kata_name", metavar="KATA", shell_complete=_complete_kata)(f)


@contextlib.contextmanager
def obtain_broker_for(kata, mode: str, bootstrap_servers: str | None):
    with console.spinner("Getting a Kafka broker ready…"):
        broker = brokers.start_for(kata, mode, bootstrap_servers, console.progress)
    try:
        with services.started(kata, broker.bootstrap_servers, console.progress):
            yield broker
    finally:
        broker.stop()


def cluster_file_of(broker):
    """The node-control file of a local broker (None for other providers)."""
    return getattr(broker, "control_file", None)
