"""`grade kafka TOOL ...`: the course's CLI cheat sheet, run for real against the grader's broker.

The tools are Apache Kafka's own command-line classes (the ones bin/kafka-*.sh start),
fetched from Maven Central on first use; `--bootstrap-server` is filled in for you.
"""

from __future__ import annotations

import os
import subprocess

import click

from grader import console
from grader.broker import jars, reusable
from grader.errors import UsageError

TOOLS = {
    "topics": "org.apache.kafka.tools.TopicCommand",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "configs": "kafka.admin.ConfigCommand",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "transactions": "org.apache.kafka.tools.TransactionsCommand",
    "metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
}


@click.command("kafka", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("tool", type=click.Choice(sorted(TOOLS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", metavar="HOST:PORT",
              help="Cluster to use (default: the reusable broker of `grade broker up`).")
def kafka_command(tool, args, bootstrap_servers):
    """Run a Kafka CLI tool (kafka-TOOL.sh) against the grader's broker.

    \b
    grade broker up
    grade kafka topics --list
    grade kafka topics --describe --topic orders
    grade kafka consumer-groups --describe --group my-group
    """
    if not bootstrap_servers:
        broker = reusable.running()
        if broker is None:
            raise UsageError("No broker to talk to: `grade kafka` uses the reusable broker, and none is running.",
                             next_step="run `grade broker up` first (or pass --bootstrap-servers HOST:PORT).")
        bootstrap_servers = broker.bootstrap_servers
    java = jars.java_executable()
    classpath = jars.tools_classpath(console.progress)
    argv = list(args)
    if not any(a.startswith("--bootstrap-server") for a in argv):
        argv = ["--bootstrap-server", bootstrap_servers, *argv]
    log4j = jars.cache_root() / "tools-log4j2.properties"
    if not log4j.exists():
        log4j.parent.mkdir(parents=True, exist_ok=True)
        log4j.write_text("rootLogger.level = WARN\nappender.err.type = Console\nappender.err.name = ERR\n"
                         "appender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\n"
                         "appender.err.layout.pattern = %p %m%n\nrootLogger.appenderRef.err.ref = ERR\n")
    cmd = [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", f"-Dlog4j2.configurationFile={log4j}",
           "-cp", classpath, TOOLS[tool], *argv]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # KAFKA-15413: COLUMNS breaks argument parsing
    raise SystemExit(subprocess.run(cmd, env=env).returncode)
