"""Client settings for the run's cluster (the implementation lives in grader/clientroute.py, which the
learner host imports without loading the rest of the kit).

    from grader.kit.clients import client_config
    Producer(client_config({"bootstrap.servers": kafka.bootstrap_servers, ...}))
"""

from grader.clientroute import client_config, configured, own_prefix

__all__ = ["client_config", "configured", "own_prefix"]
