"""A run on a shared cluster leaves nothing behind: after the judge ends, every topic and consumer group
whose name starts with the run's prefix is deleted (the kit's, and those the learner's code made).

Transactional ids cannot be deleted through the Admin API; the broker forgets them after
transactional.id.expiration.ms (7 days by default). They hold no data.
"""

from __future__ import annotations

import contextlib
import threading
import time

from grader.clientconfig import ClientSettings

# A group whose member was killed (crash checks) stays non-empty until its session times out: the
# checks' consumers use short sessions, a learner's forgotten consumer the 45 s default.
GROUP_GRACE_S = 50.0
_PENDING: dict[str, tuple] = {}  # group -> (bootstrap servers, settings) of the run that left it
_LOCK = threading.Lock()


def admin(bootstrap_servers: str, settings: ClientSettings):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0, **settings.client_properties()})


def names(bootstrap_servers: str, settings: ClientSettings, prefix: str) -> dict[str, list[str]]:
    """Topics and consumer groups under prefix, as this principal may see them."""
    client = admin(bootstrap_servers, settings)
    topics = sorted(t for t in client.list_topics(timeout=15).topics if t.startswith(prefix))
    listed = client.list_consumer_groups(request_timeout=15).result(timeout=20)
    groups = sorted(g.group_id for g in listed.valid if g.group_id.startswith(prefix))
    return {"topics": topics, "groups": groups}


def cleanup(bootstrap_servers: str, settings: ClientSettings, run_prefix: str) -> dict[str, list[str]]:
    """Delete what the run made. Groups that cannot go yet (a killed member's session still runs) wait for
    finish() at the end of the command, so runs never wait for them. Returns what is still there."""
    client = admin(bootstrap_servers, settings)
    left = {"topics": [], "groups": []}
    with contextlib.suppress(Exception):
        left = names(bootstrap_servers, settings, run_prefix)
        if left["topics"]:
            failed = []
            for topic, future in client.delete_topics(left["topics"], operation_timeout=10).items():
                try:
                    future.result(timeout=20)
                except Exception:
                    failed.append(topic)
            left["topics"] = failed
        left["groups"] = _delete_groups(client, left["groups"])
        with _LOCK:
            _PENDING.update({group: (bootstrap_servers, settings) for group in left["groups"]})
    return left


def finish(progress=None, grace_s: float = GROUP_GRACE_S) -> list[str]:
    """At the end of a command: delete the groups earlier runs left, waiting for their sessions to expire.
    Returns the groups still there after grace_s."""
    deadline = time.monotonic() + grace_s
    with _LOCK:
        pending = dict(_PENDING)
        _PENDING.clear()
    if pending and progress is not None:
        progress(f"Deleting {len(pending)} consumer group(s) of this command's runs once their killed members' "
                 f"sessions expire (up to {grace_s:.0f} s)…")
    while pending:
        clusters = {servers: settings for servers, settings in pending.values()}
        for servers, settings in clusters.items():
            groups = [g for g, (where, _) in pending.items() if where == servers]
            with contextlib.suppress(Exception):
                for group in set(groups) - set(_delete_groups(admin(servers, settings), groups)):
                    pending.pop(group, None)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return sorted(pending)


def _delete_groups(client, groups: list[str]) -> list[str]:
    """Try once; the groups that could not be deleted (non-empty)."""
    if not groups:
        return []
    left = []
    for group, future in client.delete_consumer_groups(groups, request_timeout=10).items():
        try:
            future.result(timeout=15)
        except Exception as exc:  # GROUP_ID_NOT_FOUND: gone already
            if "GROUP_ID_NOT_FOUND" not in str(exc):
                left.append(group)
    return left
