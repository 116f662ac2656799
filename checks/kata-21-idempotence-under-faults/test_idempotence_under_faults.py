"""Hidden checks for kata-21 (an idempotent producer under network faults). Never shown to learners.

One run of the learner's publish_events() per check session: events of several keys flow through
fault proxies; mid-stream every broker response is dropped (the brokers still apply the writes), then
every client connection is cut. A producer that resends without idempotence writes those events twice.
The last event goes out over a slow network, so a function that returns before its deliveries are done
is seen to do so on every run.
Three checks judge that run, from the topic as any consumer reads it back (read_committed, so a
producer that wraps the stream in a transaction is judged by what it committed); a fourth calls
publish_events once more on a topic that refuses one of the events for good.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
from _kata21_support import Brokers, FaultyStream, until
from confluent_kafka.admin import NewTopic

from grader.kit import KafkaKit, Record, explain, load_learner_module

# Keys that are not all ASCII: key and value must be UTF-8 bytes.
KEYS = ["acct-1", "acct-2", "cuenta-ñ-3", "konto-ä-4", "账户-5", "acct-6"]
EVENTS_PER_KEY = 50
PARTITIONS = 3
BEFORE_FAULT = 60  # events handed over (and committed) before the responses start to vanish
RUN_DEADLINE_S = 60.0
REFUSING_MAX_BYTES = 1024  # the refusing topic's max.message.bytes...
REFUSED_VALUE_BYTES = 3000  # ...and an event it can never take
REFUSAL_DEADLINE_S = 20.0


def make_events() -> list[tuple[str, str]]:
    # Interleaved keys, a per-key sequence number in every value: duplicates and reordering both show.
    return [(key, f"{key}|{seq:03d}") for seq in range(EVENTS_PER_KEY) for key in KEYS]


@dataclass
class Outcome:
    topic: str
    events: list[tuple[str, str]]
    stream: FaultyStream
    returned: bool = False
    error: BaseException | None = None
    records: list[Record] = field(default_factory=list)
    written_at_return: int | None = None  # records the cluster held when publish_events returned
    refusing_topic: str = ""
    refusal: str = "not run"  # what the call on the refusing topic did: "returned", "raised: ...", "hung"

    @property
    def call(self) -> str:
        return (f"called publish_events(bootstrap, {self.topic!r}, <{len(self.events)} events of {len(KEYS)} keys>); "
                f"after {BEFORE_FAULT} events every broker response was dropped, then every connection was cut")


@pytest.fixture(scope="module")
def outcome(cluster, bootstrap_servers, impl_path, pytestconfig):
    run_id = pytestconfig.getoption("--kata-run-id") or uuid.uuid4().hex[:6]
    kit = KafkaKit(bootstrap_servers, prefix=f"kk-{run_id}-idem")
    brokers = Brokers(cluster)
    try:
        brokers.heal()
        refusing = kit.unique("refusing")
        # Created now, used after the main run: by then it has its leader, and the run does not wait for it.
        kit.admin.create_topics([NewTopic(refusing, num_partitions=1, replication_factor=3,
                                          config={"max.message.bytes": str(REFUSING_MAX_BYTES)})])
        kit.created_topics.append(refusing)
        topic = kit.create_topic(partitions=PARTITIONS, replication_factor=3, config={"min.insync.replicas": "2"})
        until(lambda: brokers.all_in_sync(topic), 30, "all replicas in sync")
        impl = load_learner_module(impl_path)
        events = make_events()
        stream = FaultyStream(events, brokers, topic, PARTITIONS, before=BEFORE_FAULT)
        out = Outcome(topic, events, stream, refusing_topic=refusing)

        def run() -> None:
            try:
                impl.publish_events(bootstrap_servers, topic, stream)
                out.returned = True
                # "Returns only when every event is delivered": what the cluster holds at this very moment.
                out.written_at_return = brokers.written(topic, PARTITIONS)
            except BaseException as exc:  # reported by the checks, in the learner's terms
                out.error = exc

        worker = threading.Thread(target=run, daemon=True, name="publish_events")
        worker.start()
        worker.join(RUN_DEADLINE_S)
        stream.finish()
        # A transactional producer's commit markers land a moment after it returns; an open transaction never
        # settles, and then only what was committed is read (after this bounded wait).
        until(lambda: brokers.settled(topic, PARTITIONS), 10, "every transaction on the topic to end")
        out.records = kit.read_all(out.topic, timeout=15)
        out.refusal = _call_refused(impl, bootstrap_servers, refusing)
        yield out
    finally:
        brokers.heal()
        brokers.close()
        kit.close()


def _call_refused(impl, bootstrap_servers: str, topic: str) -> str:
    """publish_events on a topic that refuses the middle event for good (too large for max.message.bytes)."""
    events = [(KEYS[0], f"{KEYS[0]}|000"), (KEYS[0], "x" * REFUSED_VALUE_BYTES), (KEYS[0], f"{KEYS[0]}|002")]
    box: dict = {}

    def run() -> None:
        try:
            impl.publish_events(bootstrap_servers, topic, iter(events))
            box["outcome"] = "returned"
        except Exception as exc:  # the expected outcome
            box["outcome"] = f"raised {type(exc).__name__}: {str(exc)[:200]}"

    worker = threading.Thread(target=run, daemon=True, name="publish_events-refused")
    worker.start()
    worker.join(REFUSAL_DEADLINE_S)
    return box.get("outcome", "hung")


def _scenario_happened(out: Outcome) -> None:
    """Every check needs the fault to have hit real writes; say so plainly when it could not."""
    if out.stream.problem:
        explain(did=out.call,
                saw=f"{out.stream.problem} (your function had taken {out.stream.handed_over} events from the stream)",
                expected="each event to reach the cluster soon after your function takes it from the stream",
                nudge="two causes fit. Either the events were not sent yet: `events` is a live stream, so produce "
                "each one as you receive it and let the producer send in the background (poll() serves callbacks; "
                "flush() only at the end). Or they were sent and failed: look at the delivery reports' errors "
                "(a setting the brokers refuse? a delivery timeout far too short? message.timeout.ms is in "
                "milliseconds).")


def _values(out: Outcome) -> Counter:
    return Counter(r.value_text for r in out.records)


def test_every_event_is_delivered_despite_lost_responses(outcome):
    """Every event reaches the topic, and publish_events returns normally, although responses were lost."""
    out = outcome
    _scenario_happened(out)
    if out.error is not None:
        explain(did=out.call,
                saw=f"publish_events raised {type(out.error).__name__}: {str(out.error)[:300]}",
                expected="it returns normally: every lost response was followed by a retry that succeeded",
                nudge="a lost response or a dropped connection is a retriable error. Which producer settings "
                "let the client resend safely, and which ones does librdkafka refuse to combine?")
    if not out.returned:
        explain(did=out.call, saw=f"publish_events had not returned {RUN_DEADLINE_S:.0f} s later",
                expected="it returns once every event is delivered (the network was whole again after the fault)",
                nudge="does your function wait for deliveries with a bound, and serve delivery callbacks?")
    if out.written_at_return is not None and out.written_at_return < len(out.events):
        explain(did=out.call + "; when it returned, the check asked the brokers how many records the topic held",
                saw=f"{out.written_at_return} of {len(out.events)} events were in the topic when publish_events "
                "returned",
                expected="publish_events returns only once every event is delivered (acknowledged)",
                nudge="produce() only queues an event in your process. What waits until every queued event has "
                "its delivery report, and what does it return when some are still outstanding?")
    seen = _values(out)
    missing = [v for _, v in out.events if seen[v] == 0]
    if missing:
        explain(did=out.call + ", then read the topic from the beginning",
                saw=f"{len(missing)} of {len(out.events)} events are missing (e.g. {missing[:3]})",
                expected="every event in the topic",
                nudge="produce() only queues an event; was every one delivered before your function returned?")


def test_no_event_is_written_twice(outcome):
    """No event is written twice, although the producer had to resend requests the brokers had applied."""
    out = outcome
    _scenario_happened(out)
    seen = _values(out)
    twice = sorted(v for v, n in seen.items() if n > 1)
    if twice:
        explain(did=out.call + ", then read the topic from the beginning",
                saw=f"{len(twice)} events are in the topic more than once (e.g. {twice[:3]}, "
                f"{seen[twice[0]]} times); while the answers were thrown away, the check had seen at least "
                f"{out.stream.lost_acks} records written whose acknowledgement never reached your producer",
                expected="each event exactly once",
                nudge="the broker applied those writes and only the answer was lost, so the producer sent them "
                "again. How can a broker recognise a batch it has already written?")
    if not out.records:
        explain(did=out.call, saw="the topic is empty", expected=f"{len(out.events)} events, each once")


def test_each_key_keeps_its_order(outcome):
    """Each key's events sit on one partition, in the order they were given, without going back."""
    out = outcome
    _scenario_happened(out)
    if not out.records:
        explain(did=out.call, saw="the topic is empty", expected=f"{len(out.events)} events in order per key")
    per_key: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for r in out.records:
        # The account is in the value too: a record sent without its key is still attributed to it.
        account = (r.value_text or "").split("|")[0]
        if account in KEYS and r.key != account.encode():
            explain(did=out.call + ", then read the topic from the beginning",
                    saw=f"the event {r.value_text!r} has the key {r.key!r}",
                    expected=f"its key as UTF-8 bytes: {account.encode()!r}",
                    nudge="the key travels with the record: it picks the partition, and consumers read it. "
                    "Send each event with its own key, encoded as UTF-8.")
        per_key[account].append((r.partition, r.offset, r.value_text))
    for key in KEYS:
        rows = sorted(per_key.get(key, []))
        partitions = sorted({p for p, _, _ in rows})
        if len(partitions) > 1:
            explain(did=out.call + f", then read the events of key {key!r}",
                    saw=f"they are spread over partitions {partitions}",
                    expected="all events of one key on one partition, so their order is kept",
                    nudge="Kafka orders records within a partition only. What decides the partition of a record?")
        seqs = [int(v.rsplit("|", 1)[1]) for _, _, v in rows if v and "|" in v]
        backwards = next((i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]), None)
        if backwards is not None:
            around = seqs[max(0, backwards - 3):backwards + 3]
            explain(did=out.call + f", then read the events of key {key!r} in offset order",
                    saw=f"the sequence goes back at the key's event #{backwards}: ... {around} ...",
                    expected="sequence numbers strictly increasing (0, 1, 2, ...), as given",
                    nudge="when a request is resent after later ones were written, or written twice, the log "
                    "no longer follows your order. What lets the broker keep a producer's batches in sequence "
                    "across retries?")


def test_raises_when_an_event_cannot_be_delivered(outcome):
    """When the cluster refuses an event for good, publish_events raises instead of returning normally."""
    out = outcome
    if out.refusal.startswith("raised"):
        return
    did = (f"called publish_events(bootstrap, {out.refusing_topic!r}, <3 events>) on a topic with "
           f"max.message.bytes={REFUSING_MAX_BYTES}; the second event's value is {REFUSED_VALUE_BYTES} bytes, so the "
           "broker refuses it (MSG_SIZE_TOO_LARGE), every time")
    if out.refusal == "hung":
        explain(did=did, saw=f"publish_events had not returned or raised {REFUSAL_DEADLINE_S:.0f} s later",
                expected="it raises: an event could not be delivered",
                nudge="the broker's refusal arrives at once, in that event's delivery report. Does your function "
                "serve delivery reports while it waits, and stop waiting once each event has its report?")
    explain(did=did, saw=f"publish_events {out.refusal}", expected="it raises: an event could not be delivered",
            nudge="the refusal arrives in that event's delivery report, with an error. Where does your code look at "
            "it, and what does it do with it once flush() returns?")
