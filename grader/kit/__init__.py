"""The check kit: the one grader API hidden checks import (`grade validate` enforces it).

    from grader.kit import KafkaKit, explain, wait_for, ChildRun, load_learner_module
    from grader.kit.commit import ...        # consumers that commit (kata-04, kata-05)
    from grader.kit.cluster import ClusterControl
    from grader.kit.faultproxy import FaultProxy
    from grader.kit.protocolproxy import BigClusterProxy
    from grader.kit.learner import in_host         # build an object next to the learner's code
    from grader.kit.connect import ConnectRest      # Kafka Connect REST (fixtures: connect_url, postgres)
    from grader.kit import pictures                # offset bars, lanes, timelines, tables beside a failure
    from grader.kit.clients import client_config    # a client's settings for the run's (maybe secured) cluster
    from grader.kit.rawsocket import kafka_socket   # a broker socket, SASL-authenticated like the run's clients

The engine (catalog, runner, results, report, progress, broker, the learner host) is not part of it.
"""

from grader.kit.childrun import ChildRun
from grader.kit.kafka import QUIET, KafkaKit, Record, explain, to_record, wait_for
from grader.kit.learner import LearnerProcessDied, RemoteError, load_learner_module

__all__ = ["QUIET", "ChildRun", "KafkaKit", "LearnerProcessDied", "Record", "RemoteError", "explain",
           "load_learner_module", "to_record", "wait_for"]
