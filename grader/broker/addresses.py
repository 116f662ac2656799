"""What a new local node is known by: free loopback ports for its listeners, and a cluster id."""

from __future__ import annotations

import base64
import contextlib
import socket
import uuid


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports. All are held open until all are picked: ports probed one at a time
    may repeat (the kernel hands a just-closed port out again), and one node's listeners must differ
    (a BROKER and a CONTROLLER listener on one port was a failed cluster start in CI)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def kafka_uuid() -> str:
    """A Kafka cluster id (base64url of 16 random bytes), made without a JVM launch.

    Never one that starts with "-" (1 in 64): `StorageTool format -t -xyz…` reads it as an option and
    fails ("argument --cluster-id/-t: expected one argument"); Kafka's Uuid.randomUuid() skips those too.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
