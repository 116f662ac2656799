"""A shared, secured cluster: the client config file (`--client-config FILE`) and the name prefix.

The file holds librdkafka properties in Java `key=value` form (`#` and `!` comments), e.g.

    security.protocol=SASL_SSL
    sasl.mechanism=SCRAM-SHA-512
    sasl.username=grader
    sasl.password=...
    kafka-katas.prefix=grading.   # optional: the prefix the grading principal may use

Only connection and security settings are accepted: a file that set `isolation.level` or
`session.timeout.ms` for every client would change what the checks verify. A Java
`sasl.jaas.config` (PlainLoginModule / ScramLoginModule) becomes sasl.username/password.

The settings of one command are activated once (`activate`) and read where clients are
made: the broker provider, the runner (which hands them to the judge and the learner host)
and the cleanup after each run (grader/shared_run.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import UsageError

ENV_FILE = "KAFKA_KATAS_CLIENT_CONFIG"
ENV_PREFIX = "KAFKA_KATAS_PREFIX"
PREFIX_KEY = "kafka-katas.prefix"
DEFAULT_PREFIX = "kk-"
# Families of settings that say how to reach and authenticate to a cluster, never how clients behave.
ALLOWED_EXACT = {"bootstrap.servers", "security.protocol", "client.id", "client.rack", "broker.address.family",
                 "enable.ssl.certificate.verification", "socket.keepalive.enable", "client.dns.lookup"}
ALLOWED_PREFIXES = ("sasl.", "ssl.", "ssl_")
ALIASES = {"sasl.mechanism": "sasl.mechanisms"}
PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
JAAS_RE = re.compile(r"(PlainLoginModule|ScramLoginModule)\s+required\s+(.*?);?\s*$")
JAAS_OPTION_RE = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))""")


@dataclass(frozen=True)
class ClientSettings:
    """librdkafka properties every client of a run gets, and the prefix its names must start with."""

    properties: dict[str, str] = field(default_factory=dict)
    prefix: str = DEFAULT_PREFIX
    source: str = ""

    @property
    def bootstrap_servers(self) -> str | None:
        return self.properties.get("bootstrap.servers")

    def client_properties(self) -> dict[str, str]:
        """What is merged into every client (the address travels separately)."""
        return {k: v for k, v in self.properties.items() if k != "bootstrap.servers"}

    def run_prefix(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}-"


_ACTIVE: list[ClientSettings] = []


def activate(settings: ClientSettings | None) -> None:
    _ACTIVE[:] = [settings] if settings else []


def active() -> ClientSettings | None:
    return _ACTIVE[0] if _ACTIVE else None


def applies_to(kata) -> bool:
    """Katas with a local cluster of their own (several brokers, faults) or services (a Connect worker speaks
    Java client settings, which are not translated) never run on the shared cluster: the settings are not theirs."""
    return active() is not None and not kata.needs_own_cluster and not kata.services


def needs_local_broker(kata) -> bool:
    """A broker the grader starts for this kata alone: its own cluster, or (on a shared cluster) its services."""
    settings = active()
    return kata.needs_own_cluster or bool(kata.services and settings is not None and settings.properties)


def load(path: Path | None, prefix: str | None) -> ClientSettings | None:
    """The settings of `--client-config FILE` / `--prefix` (None: neither was given)."""
    if path is None and prefix is None:
        return None
    settings = parse(Path(path)) if path is not None else ClientSettings()
    chosen = prefix if prefix is not None else settings.prefix
    if not PREFIX_RE.match(chosen):
        where = f"--prefix {chosen!r}" if prefix is not None else f"{settings.source}: {PREFIX_KEY}={chosen}"
        raise UsageError(f"{where} is not a usable name prefix: topic, group and transactional ids may hold "
                         "only letters, digits, '.', '_' and '-' (at most 100 here).",
                         next_step="use the prefix your ACLs grant, e.g. `--prefix grading.` and run the same "
                         "command again.")
    return ClientSettings(settings.properties, chosen, settings.source)


def parse(path: Path) -> ClientSettings:
    if not path.is_file():
        raise UsageError(f"The client config file {path} does not exist.",
                         next_step="write the cluster's client settings there (docs/classroom.md, \"Your own "
                         "secured cluster\"), or drop --client-config / unset " + ENV_FILE + ".")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"The client config file {path} cannot be read: {exc}.",
                         next_step="make it a readable UTF-8 text file of key=value lines.") from None
    props: dict[str, str] = {}
    lines: dict[str, int] = {}
    prefix = DEFAULT_PREFIX
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = _split(line)
        where = f"{path}, line {number}"
        if not sep or not key:
            raise _bad(path, f"{where}: expected key=value, found {raw.strip()!r}.")
        if key == PREFIX_KEY:
            prefix = value
            continue
        if key == "sasl.jaas.config":
            for k, v in _from_jaas(value, where, path).items():
                props[k], lines[k] = v, number
            continue
        if key not in ALLOWED_EXACT and not key.startswith(ALLOWED_PREFIXES):
            raise _bad(path, f"{where}: `{key}` is not a connection or security setting. The checks set how "
                       "their clients behave (timeouts, acks, isolation); this file may only say how to reach "
                       "the cluster: bootstrap.servers, security.protocol, sasl.*, ssl.*, client.id.",
                       fix="remove that line")
        if key in props:
            raise _bad(path, f"{where}: `{key}` was already set on line {lines[key]}.", fix="keep one of them")
        props[key], lines[key] = value, number
    _check_with_librdkafka(props, lines, path)
    return ClientSettings(props, prefix, str(path))


def _split(line: str) -> tuple[str, str, str]:
    """Java properties: the first '=' or ':' separates key and value."""
    match = re.match(r"^([^=:\s]+)\s*([=:])\s*(.*)$", line)
    if not match:
        return line, "", ""
    return match.group(1), match.group(2), match.group(3).strip()


def _from_jaas(value: str, where: str, path: Path) -> dict[str, str]:
    """A Java client's sasl.jaas.config, as librdkafka's sasl.username and sasl.password."""
    match = JAAS_RE.search(value)
    if not match:
        raise _bad(path, f"{where}: sasl.jaas.config names a login module librdkafka cannot use ({value[:60]!r}); "
                   "only PlainLoginModule and ScramLoginModule translate to sasl.username/sasl.password.",
                   fix="write sasl.username=... and sasl.password=... lines instead")
    options = {m.group(1): next(g for g in m.groups()[1:] if g is not None)
               for m in JAAS_OPTION_RE.finditer(match.group(2))}
    if "username" not in options or "password" not in options:
        raise _bad(path, f"{where}: sasl.jaas.config has no username=... password=... options.",
                   fix="add them, or write sasl.username=... and sasl.password=... lines instead")
    return {"sasl.username": options["username"], "sasl.password": options["password"]}


def _check_with_librdkafka(props: dict[str, str], lines: dict[str, int], path: Path) -> None:
    """librdkafka itself judges names and values: a client made from them (it connects nowhere)."""
    from confluent_kafka import KafkaException, Producer

    conf = {k: v for k, v in props.items() if k != "bootstrap.servers"}
    try:
        Producer({**conf, "log_level": 0}).flush(0)
        return
    except (KafkaException, ValueError, TypeError) as exc:
        error = _error_text(exc)
    # librdkafka names the property it refuses (under its own name: sasl.mechanisms for sasl.mechanism).
    named = [k for k in conf if k in error or ALIASES.get(k, k) in error]
    if named:
        key = min(named, key=lambda k: error.find(ALIASES.get(k, k)) if ALIASES.get(k, k) in error else error.find(k))
        shown = _shown(key, conf[key])
        raise _bad(path, f"{path}, line {lines[key]}: librdkafka refuses `{key}={shown}`: {error}") from None
    raise _bad(path, f"{path}: librdkafka refuses these settings together: {error}",
               fix="check that security.protocol matches the sasl.* and ssl.* settings")


def _shown(key: str, value: str) -> str:
    """Secrets never reach a terminal or a CI log."""
    return "***" if any(w in key for w in ("password", "secret", ".key", "pem")) else value


def _error_text(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return getattr(arg, "str", lambda: str(arg))()


def _bad(path: Path, what: str, fix: str = "fix it") -> UsageError:
    return UsageError(what, next_step=f"{fix} in {path}, then run the same command again "
                      "(`grade KATA --client-config FILE`).")
