"""The protocol proxy's timing probe, for real: held answers reach the client late, counted, and answers to
pipelined requests are held side by side (kata-17's slow-broker round relies on both)."""

import time

import pytest
from confluent_kafka import Producer

from grader.kit import QUIET, KafkaKit
from grader.kit.protocolproxy import PRODUCE, BigClusterProxy

pytestmark = pytest.mark.broker

HOLD_S = 1.0


def test_held_produce_answers_arrive_late_and_side_by_side(bootstrap):
    kit = KafkaKit(bootstrap, "proxy-hold")
    topic = kit.create_topic(partitions=5)
    real = next(iter(kit.admin.list_topics(timeout=10).brokers.values()))
    proxy = BigClusterProxy(real.host, real.port, real.id, 1)
    try:
        # linger 0 and 5 in flight: each record leaves at once in a request of its own, while the ones
        # before it are still unanswered, so the five requests share one connection, pipelined.
        producer = Producer({"bootstrap.servers": proxy.bootstrap, **QUIET, "linger.ms": 0,
                             "max.in.flight.requests.per.connection": 5})
        producer.list_topics(topic, timeout=10)
        proxy.hold_responses[PRODUCE] = HOLD_S
        delivered: dict[int, float] = {}
        sent: dict[int, float] = {}
        for p in range(5):
            sent[p] = time.monotonic()
            producer.produce(topic, value=b"x", partition=p,
                             on_delivery=lambda err, msg: delivered.__setitem__(msg.partition(), time.monotonic()))
            producer.poll(0.05)
        assert proxy.answered.get(PRODUCE, 0) == 0, "an answer got through before its hold was up"
        started = time.monotonic()
        assert producer.flush(20) == 0
        waited = time.monotonic() - started
    finally:
        proxy.close()
        kit.close()
    assert sorted(delivered) == list(range(5))
    assert proxy.answered[PRODUCE] == 5, proxy.answered
    assert all(delivered[p] - sent[p] >= HOLD_S for p in range(5)), (sent, delivered)
    # Held one after another, the last answer would come about 5 x HOLD_S after the first request.
    assert waited < 2 * HOLD_S, f"flush waited {waited:.2f} s: the held answers were queued behind each other"
