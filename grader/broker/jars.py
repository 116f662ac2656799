"""Find the Kafka broker's jars: $KAFKA_HOME, or a cache filled once by `mvn`.

The cache lives in the user's cache directory (KAFKA_KATAS_CACHE overrides it) so
every clone and every course shares one download.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from grader import KAFKA_VERSION
from grader.broker.base import Progress
from grader.errors import InfraError

MIN_JAVA = 17
MARKER = "resolved.txt"  # written last: its presence means the jar set is complete


def cache_root() -> Path:
    env = os.environ.get("KAFKA_KATAS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kafka-katas"


def java_executable() -> str:
    """The `java` to run, after checking it is there and new enough."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise InfraError(
            "Java was not found. The local Kafka broker is a Java program and needs Java 17 or newer.",
            next_step="install a JDK 17+ (e.g. `sudo apt-get install openjdk-17-jre-headless`), "
            "or use a broker you already run: `grade KATA --bootstrap-servers HOST:PORT`.",
        )
    version = java_major_version(java)
    if version < MIN_JAVA:
        raise InfraError(
            f"Java {version} was found at {java}, but Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or newer.",
            next_step="install a JDK 17+ and point JAVA_HOME at it, then run the same `grade` command again.",
        )
    return java


def java_major_version(java: str) -> int:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"Could not run `{java} -version`: {exc}",
                         next_step="check your Java installation (`java -version`).") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise InfraError(f"Could not read the Java version from `{java} -version`:\n{out.strip()}",
                         next_step="check your Java installation (`java -version`).")
    major = int(match.group(1))
    # Java 8 and older report "1.8": the real major is the second number.
    return int(match.group(2)) if major == 1 and match.group(2) else major


def kafka_classpath(progress: Progress) -> str:
    """Classpath for kafka.Kafka, resolving jars with mvn on first use."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home).expanduser() / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise InfraError(
                f"KAFKA_HOME is set to {home}, but {libs} holds no kafka_2.13-*.jar.",
                next_step="point KAFKA_HOME at an unpacked Apache Kafka 4.x distribution, "
                "or unset it to let the grader fetch the jars with mvn.",
            )
        return f"{libs}/*"
    lib = jar_dir()
    if not cache_complete(lib):
        resolve_with_mvn(lib, progress)
    return f"{lib}/*"


def jar_dir() -> Path:
    return cache_root() / f"kafka-{KAFKA_VERSION}" / "lib"


def tools_classpath(progress: Progress) -> str:
    """Classpath for the Kafka CLI tools (`grade kafka`): the tools' own jars, then the broker's."""
    broker = kafka_classpath(progress)
    lib = cache_root() / f"kafka-{KAFKA_VERSION}" / "tools-lib"
    if not cache_complete(lib, required="kafka-tools-"):
        resolve_with_mvn(lib, progress, pom="tools-pom.xml", what="command-line tools", size="about 25 MB")
    return f"{lib}/*:{broker}"


def cache_complete(lib: Path, required: str = "kafka_2.13-") -> bool:
    """True when every jar listed in the marker is present and non-empty."""
    marker = lib / MARKER
    if not marker.is_file():
        return False
    names = [n for n in marker.read_text().split() if n]
    if not names or not any(n.startswith(required) for n in names):
        return False
    return all((lib / n).is_file() and (lib / n).stat().st_size > 0 for n in names)


def resolve_with_mvn(lib: Path, progress: Progress, pom: str = "pom.xml", what: str = "broker",
                     size: str = "about 45 MB") -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise InfraError(
            f"Maven (`mvn`) was not found. The grader uses it once to download the Kafka {KAFKA_VERSION} "
            "jars from Maven Central.",
            next_step="install Maven (e.g. `sudo apt-get install maven`), or set KAFKA_HOME to an unpacked "
            "Kafka distribution, or run with `--bootstrap-servers HOST:PORT`.",
        )
    partial = lib.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with resources.as_file(resources.files("grader.broker").joinpath(pom)) as pom_path:
        cmd = [mvn, "-B", "-q", "-f", str(pom_path), "dependency:copy-dependencies",
               f"-Dkafka.version={KAFKA_VERSION}", "-DincludeScope=runtime",
               f"-DoutputDirectory={partial}"]
        progress(f"Downloading the Kafka {KAFKA_VERSION} {what} jars with mvn (first run only, {size})…")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as exc:
            raise InfraError("`mvn` did not finish resolving the Kafka jars within 15 minutes.",
                             next_step="check your network access to Maven Central, then run the "
                             "same command again.") from exc
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise InfraError(
            f"`mvn` could not resolve the Kafka {KAFKA_VERSION} {what} jars (exit {proc.returncode}).",
            detail=f"Command: {' '.join(cmd)}\n{tail}",
            next_step="check that Maven Central is reachable (`mvn -v`, proxy settings in "
            "~/.m2/settings.xml), then run the same command again.",
        )
    jars = sorted(p.name for p in partial.glob("*.jar"))
    (partial / MARKER).write_text("\n".join(jars) + "\n")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)  # atomic: a half-finished download never looks complete
    progress(f"Cached {len(jars)} jars in {lib}")


if __name__ == "__main__":  # `python -m grader.broker.jars` pre-fetches the jars (used by .ci/run)
    print(kafka_classpath(lambda m: print(m, file=sys.stderr)))
