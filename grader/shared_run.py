"""A run on a shared cluster leaves nothing behind: after the judge ends, every topic and consumer group
whose name starts with the run's prefix is deleted (the kit's, and those the learner's code made).

Transactional ids cannot be deleted through the Admin API; the broker forgets them after
transactional.id.expiration.ms (7 days by default). They hold no data.
"""

from __future__ import annotations

import contextlib
import time

from grader.clientconfig import ClientSettings

# A group whose member was killed (crash checks) stays non-empty until its session times out: the
# checks' consumers use short sessions, a learner's forgotten consumer the 45 s default.
GROUP_GRACE_S = 50.0


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


def cleanup(bootstrap_servers: str, settings: ClientSettings, run_prefix: str,
            grace_s: float = GROUP_GRACE_S) -> dict[str, list[str]]:
    """Delete what the run made; returns what is still there (empty lists: nothing left behind)."""
    deadline = time.monotonic() + grace_s
    client = admin(bootstrap_servers, settings)
    left = {"topics": [], "groups": []}
    with contextlib.suppress(Exception):
        left = names(bootstrap_servers, settings, run_prefix)
        if left["topics"]:
            futures = client.delete_topics(left["topics"], operation_timeout=10)
            for future in futures.values():
                with contextlib.suppress(Exception):
                    future.result(timeout=20)
        while left["groups"]:
            for future in client.delete_consumer_groups(left["groups"], request_timeout=10).values():
                with contextlib.suppress(Exception):
                    future.result(timeout=15)
            left = names(bootstrap_servers, settings, run_prefix)
            if not left["groups"] or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        left = names(bootstrap_servers, settings, run_prefix)
    return left
