"""The one place a Kafka client's settings are completed for the cluster a run grades on.

    from grader.kit.clients import client_config   # (the kit re-exports grader/clientroute.py)
    Producer(client_config({"bootstrap.servers": servers, ...}))

On a plain run this returns the settings unchanged. On a shared, secured cluster
(`grade --client-config FILE` / `--prefix`) it adds the cluster's connection and security
properties (security.protocol, sasl.*, ssl.*) and puts every group.id and transactional.id
that does not yet start with the run's prefix under it, so the grading principal only ever
touches names its prefixed ACLs grant, and the run's cleanup finds everything it made.

Both the judge and the learner host call `install()`, which routes every confluent_kafka
Producer, Consumer and AdminClient made afterwards through client_config: the checks' own
helpers and the learner's code reach the cluster the same way, and the learner-facing API
(stubs that take only bootstrap_servers) does not change.
"""

from __future__ import annotations

import json
import os

ENV = "KAFKA_KATAS_CLIENT"  # the learner host's copy: {"properties": {...}, "run_prefix": "..."}
DEFAULT_NAME_PREFIX = "kk-"  # what names start with when no prefix was chosen (kit and checks)
_STATE: dict = {"properties": {}, "run_prefix": "", "name_prefix": DEFAULT_NAME_PREFIX}
ID_KEYS = ("group.id", "transactional.id")


def configure(properties: dict | None, run_prefix: str = "", name_prefix: str = DEFAULT_NAME_PREFIX) -> None:
    _STATE.update(properties=dict(properties or {}), run_prefix=run_prefix, name_prefix=name_prefix)


def configured() -> bool:
    return bool(_STATE["properties"] or _STATE["run_prefix"])


def client_config(config: dict | None = None) -> dict:
    """config completed for this run's cluster: its security properties, ids under the run's prefix."""
    out = dict(config or {})
    run_prefix = _STATE["run_prefix"]
    if run_prefix:
        for key in ID_KEYS:
            value = out.get(key)
            if isinstance(value, str) and not value.startswith(run_prefix):
                out[key] = run_prefix + value
    out.update(_STATE["properties"])  # the cluster's requirements win over a client's own choice
    return out


def authorization_note(text: str) -> str:
    """On a shared cluster, what an authorization failure in `text` means (empty: none, or not shared)."""
    run_prefix = _STATE["run_prefix"]
    if not run_prefix or "authorization failed" not in text.lower().replace("_", " "):
        return ""
    return (f"The cluster refused a request for lack of permission. On this shared cluster a run may only use "
            f"topics, consumer groups and transactional ids whose names start with {run_prefix!r}: its ACLs "
            "grant that prefix and nothing else. Use the names the check passes to your function, never names "
            "of your own.")


def own_prefix(prefix: str) -> str:
    """A name prefix a check chose in the default form (`kk-<run id>-...`), under the chosen prefix."""
    chosen = _STATE["name_prefix"]
    if chosen != DEFAULT_NAME_PREFIX and prefix.startswith(DEFAULT_NAME_PREFIX):
        return chosen + prefix[len(DEFAULT_NAME_PREFIX):]
    return prefix


def to_env() -> dict[str, str]:
    """The learner host's copy of these settings (grader/host/sandbox.py puts it in the host's environment)."""
    if not configured():
        return {}
    return {ENV: json.dumps({"properties": _STATE["properties"], "run_prefix": _STATE["run_prefix"]})}


def from_env() -> bool:
    """In the learner host: read the settings the judge passed, if any."""
    raw = os.environ.pop(ENV, "")
    if not raw:
        return False
    data = json.loads(raw)
    configure(data.get("properties"), data.get("run_prefix", ""))
    return True


def install() -> None:
    """Route every confluent_kafka client made from now on through client_config."""
    import confluent_kafka
    import confluent_kafka.admin as admin

    if getattr(confluent_kafka.Producer, "_kk_routed", False):
        return
    for name in ("Producer", "Consumer"):  # C types: a subclass stands in for them
        setattr(confluent_kafka, name, _routed(getattr(confluent_kafka, name)))
    # Python classes (their own methods name themselves, so they must stay the same class): route __init__.
    for cls in (admin.AdminClient, getattr(confluent_kafka, "SerializingProducer", None),
                getattr(confluent_kafka, "DeserializingConsumer", None)):
        if cls is not None:
            original = cls.__init__

            def __init__(self, conf=None, *args, _original=original, **kwargs):
                _original(self, client_config({**(conf or {}), **kwargs}), *args)

            cls.__init__ = __init__


def _routed(base: type) -> type:
    def __init__(self, *args, **kwargs):
        conf = {**(args[0] if args and isinstance(args[0], dict) else {}), **kwargs}
        base.__init__(self, client_config(conf))

    return type(base.__name__, (base,), {"__init__": __init__, "__module__": base.__module__, "_kk_routed": True,
                                         "__doc__": base.__doc__})
