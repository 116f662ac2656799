"""`grade`: a thin click layer; every command lives in grader/commands/."""

from __future__ import annotations

import signal
import sys

import click

from grader import __version__, console
from grader.commands.batch import batch_command
from grader.commands.broker_cmd import broker_group
from grader.commands.export import autograde_command, export_group
from grader.commands.kafka_cli import kafka_command
from grader.commands.learner import hint_command, next_command, solution_command
from grader.commands.listing import list_command
from grader.commands.new import new_command
from grader.commands.progress_cmd import progress_command
from grader.commands.release import release_command
from grader.commands.run import run_command
from grader.commands.validate import validate_command
from grader.commands.watch import watch_command
from grader.errors import EXIT_INFRA, EXIT_USAGE, GraderError
from grader.proc import kill_all


class KataGroup(click.Group):
    """`grade kata-05` is short for `grade run kata-05`."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage("grade", "KATA [OPTIONS]  |  grade COMMAND [ARGS]...")


@click.group(cls=KataGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kafka-katas grade")
def cli():
    """Grade Kafka katas against a real Apache Kafka broker.

    \b
    grade kata-01            grade your code for kata-01
    grade kata-01 --solution grade the reference solution
    grade list               the katas in course order, with your status
    grade hint kata-01       reveal the next hint
    grade watch kata-01      re-grade every time you save
    grade progress           mastery of the checklist; --html FILE for a report
    grade validate --all     instructors/CI: every solution passes, every stub fails
    grade broker up          keep a broker warm between runs (down / status)
    grade kafka topics --list   Kafka's own CLI tools against the grader's broker
    grade new SLUG --checklist ITEM   instructors: scaffold a new kata
    grade release OUT        instructors: write a student course (no solutions, no hidden checks)
    grade batch DIR --out G  instructors: grade every student's submission into a gradebook
    grade export gradescope A.zip   instructors: a Gradescope autograder (github-classroom DIR too)
    """


cli.add_command(run_command)
cli.add_command(list_command)
cli.add_command(validate_command)
cli.add_command(broker_group)
for command in (hint_command, solution_command, next_command, progress_command, watch_command,
                new_command, kafka_command, release_command, batch_command,
                export_group, autograde_command):
    cli.add_command(command)


def _terminate(signum, frame):
    # Turn SIGTERM into the same path as Ctrl-C, so brokers and learner processes are stopped.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    # A shell that starts us in the background (`nohup`, `cmd &` in a script) leaves SIGINT ignored,
    # and Python then never raises KeyboardInterrupt: a SIGINT must still stop brokers and learner code.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cli.main(standalone_mode=False)
    except GraderError as exc:
        console.error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        kill_all()
        console.err.print("Interrupted; the broker and your code were stopped.")
        sys.exit(130)
    except KeyboardInterrupt:
        kill_all()  # check runs still going in worker threads (validate --jobs)
        console.err.print("Interrupted; the broker and your code were stopped.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        console.err.print(f"[bold yellow]Infrastructure error: {exc}[/bold yellow]\n"
                          "Next: check disk space and permissions, then run the same command again.")
        sys.exit(EXIT_INFRA)
