"""Hidden checks for kata-23 (a Connect file sink with a dead-letter topic). Never shown to learners."""

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from _kata23_support import (
    DATA_EXCEPTION,
    JSON_CONVERTER,
    POISON,
    Observation,
    dlq_like,
    failure_nudge,
    headers_of,
    observe,
    require_running_config,
)

from grader.kit import explain
from grader.kit.connect import REBALANCING, ConnectError, ConnectRest

SCENARIOS = ("single", "spread")
_KITS = []


@pytest.fixture(autouse=True)
def _keep_kit_alive(kafka):
    # A kit freed by the cyclic GC inside its AdminClient's own librdkafka thread aborts the process.
    _KITS.append(kafka)


def _scenarios(kafka, impl, connect_url, tmp_path) -> Iterator[Observation]:
    # One at a time: a check that fails on the first scenario does not wait for the second.
    return (observe(kafka, impl, connect_url, tmp_path, s) for s in SCENARIOS)


def _why_missing(obs: Observation) -> str:
    """The cause of good records missing from the file, read from what Connect recorded."""
    trace = obs.failed_trace()
    if trace:
        return f"the task FAILED ({trace}): " + failure_nudge(trace)
    good_values = {i.value for i in obs.good}
    for record in obs.dead:
        if record.value in good_values:
            _, errs = headers_of(record)
            where = f"stage {errs['stage']}, {errs.get('exception.class.name')}: {errs.get('exception.message', '')}"
            if errs.get("stage") == "KEY_CONVERTER":
                return (f"good records went to the DLQ ({where[:200]}): the keys are plain strings, not JSON. "
                        "Which converter does the connector use for keys when you name none?")
            return (f"good records went to the DLQ ({where[:200]}): does the value converter expect the format "
                    "the records are in (JSON with a schema envelope)?" if errs else
                    "good records went to the DLQ: does the converter expect the format the records are in?")
    return "does the connector read the topic it was given, and write to the file it was given?"


def _why_not_dead(obs: Observation) -> str:
    """The cause of a poison record missing from the DLQ: it went to the file, or was dropped."""
    good = {i.line for i in obs.good}
    through = [ln for ln in obs.file_lines or [] if ln not in good]
    if through:
        return (f"it was not dead-lettered because nothing failed: the file has {len(through)} lines that are no "
                f"good record (e.g. {through[0]!r:.100}). A converter that accepts a record cannot fail on it: "
                "what does this value converter expect?")
    return ("a record the sink cannot take must not vanish: the DLQ is where someone can look at it, fix it and "
            "replay it. Which topic does the connector dead-letter to?")


def test_good_records_reach_the_file_in_order(kafka, impl, connect_url, tmp_path):
    """Every good record reaches the sink's file, in order, and nothing else does.

    On a 1-partition topic (poison in the middle, in a row and at the end) and a 3-partition one."""
    for obs in _scenarios(kafka, impl, connect_url, tmp_path):
        require_running_config(obs)
        did = obs.did + ", then read the sink's file"
        lines = obs.file_lines
        if lines is None:
            explain(did=did, saw=f"no file at {obs.out_file}", expected=f"the {len(obs.good)} good records in it",
                    nudge=_why_missing(obs), seen_in="the file system")
        raw = {i.value.decode("utf-8", "replace"): i for i in obs.items}
        passed_through = [ln for ln in lines if ln in raw]
        if passed_through:
            explain(did=did, saw=f"lines that are the records' raw bytes, e.g. {passed_through[0]!r:.160}",
                    expected="each good record as the Connect struct its schema describes, e.g. "
                    f"{obs.good[0].line!r}; poison records not in the file at all",
                    nudge="a converter that passes bytes through as text parses nothing, so no record can fail "
                    "and nothing checks it against its schema. Which converter reads JSON?", seen_in="the file")
        maps = [ln for ln in lines if ln.startswith("{") and ("schema=" in ln or "payload=" in ln)]
        if maps:
            explain(did=did, saw=f"lines such as {maps[0]!r:.160}",
                    expected=f"the payload as a struct, e.g. {obs.good[0].line!r}",
                    nudge="the converter read the {schema, payload} envelope as a plain map: it was told the "
                    "values carry no schema. And a value without the envelope then passes too.", seen_in="the file")
        expected = [i.line for i in obs.good]
        missing = [i for i in obs.good if i.line not in lines]
        if missing:
            explain(did=did, saw=f"{len(lines)} lines; missing {len(missing)} good records, e.g. {missing[0].line!r} "
                    f"({missing[0].where})", expected=f"all {len(expected)} good records",
                    nudge=_why_missing(obs), seen_in="the file")
        counts = Counter(lines)
        extra = [ln for ln in lines if ln not in expected or counts[ln] > 1]
        if extra:
            explain(did=did, saw=f"lines that are no good record or repeat one, e.g. {extra[0]!r:.160}",
                    expected=f"exactly the {len(expected)} good records, each once",
                    nudge="only records that convert cleanly belong in the sink; the rest go to the DLQ.",
                    seen_in="the file")
        for partition in sorted({i.partition for i in obs.items}):
            want = [i.line for i in obs.good if i.partition == partition]
            got = [ln for ln in lines if ln in want]
            if got != want:
                explain(did=did, saw=f"partition {partition}'s records in the order {got}", expected=f"{want}",
                        nudge="records of one partition are delivered in order; one task writing one file keeps "
                        "that order. How many tasks write this file?", seen_in="the file")


def test_poison_records_land_in_the_dlq_with_context_headers(kafka, impl, connect_url, tmp_path):
    """Exactly the poison records are in the DLQ, unchanged, with __connect.errors.* headers naming the failure.

    Key, value bytes and own headers unchanged; topic, partition, offset, connector, task, stage, class, exception."""
    for obs in _scenarios(kafka, impl, connect_url, tmp_path):
        require_running_config(obs)
        did = obs.did + f", then read the DLQ topic {obs.dlq!r}"
        if not obs.dead:
            trace = obs.failed_trace()
            explain(did=did, saw=("no such topic" if not obs.dlq_exists else "an empty topic"),
                    expected=f"the {len(obs.poison)} poison records",
                    nudge=f"the task FAILED ({trace}): " + failure_nudge(trace) if trace else
                    "with errors.tolerance=all and no dead-letter topic, Connect drops bad records silently. "
                    "Which setting names the DLQ, and is it the topic you were given?")
        by_value = {i.value: i for i in obs.poison}
        strangers = [r for r in obs.dead if r.value not in by_value]
        if strangers:
            _, errs = headers_of(strangers[0])
            explain(did=did, saw=f"{len(strangers)} records that are no poison record, e.g. value "
                    f"{strangers[0].value!r:.100}; Connect's headers on it: stage {errs.get('stage')}, "
                    f"{errs.get('exception.class.name')}: {errs.get('exception.message', '')[:160]}",
                    expected="only the records that cannot be converted", nudge=_why_missing(obs))
        for item in obs.poison:
            copies = [r for r in obs.dead if r.value == item.value]
            if len(copies) != 1:
                explain(did=did, saw=f"the poison record at {item.where} ({POISON[item.kind]}) there {len(copies)} "
                        "times", expected="every poison record once, its value bytes unchanged",
                        nudge=_why_not_dead(obs) if not copies else "is one record dead-lettered more than once?")
            copy = copies[0]
            own, errs = headers_of(copy)
            if copy.key != item.key or own != item.headers:
                explain(did=did, saw=f"the poison record at {item.where} with key {copy.key!r} and headers {own}",
                        expected=f"its own key {item.key!r} and headers {item.headers}",
                        nudge="the DLQ holds the record as it was read.")
            if not errs:
                explain(did=did, saw=f"the poison record at {item.where} ({POISON[item.kind]}) with no "
                        "__connect.errors.* headers",
                        expected="headers naming its topic, partition, offset and the stage and exception that "
                        "failed", nudge="whoever reads the DLQ later has no access to the worker's log: which "
                        "setting makes Connect add the context to each dead record?")
            want = {"topic": obs.topic, "partition": str(item.partition), "offset": str(item.offset),
                    "connector.name": obs.name, "task.id": "0", "stage": "VALUE_CONVERTER",
                    "class.name": JSON_CONVERTER, "exception.class.name": DATA_EXCEPTION}
            wrong = {k: errs.get(k) for k, v in want.items() if errs.get(k) != v}
            if wrong or not errs.get("exception.message"):
                explain(did=did, saw=f"the poison record at {item.where} ({POISON[item.kind]}) with headers "
                        f"{wrong or errs}", expected=f"{ {k: want[k] for k in wrong} or 'an exception message'}",
                        nudge="task 0 is the only task of a one-task connector: how many tasks does it run?"
                        if set(wrong) == {"task.id"} else "every poison record here fails in the value converter, "
                        "reading JSON with a schema: is that the converter this connector runs with?")
        for partition in sorted({i.partition for i in obs.items}):
            want_order = [i.value for i in obs.poison if i.partition == partition]
            got_order = [r.value for r in obs.dead if r.value in want_order]
            if got_order != want_order:
                explain(did=did, saw=f"partition {partition}'s poison records in another order",
                        expected="the order they had in their partition", nudge="how many tasks share this work?")


def test_connector_and_task_keep_running(kafka, impl, connect_url, tmp_path):
    """After every record, good and poison, the connector and its one task are RUNNING, not FAILED.

    The status comes from Connect's REST API; the sink's group has committed every record's offset."""
    for obs in _scenarios(kafka, impl, connect_url, tmp_path):
        require_running_config(obs)
        did = obs.did + f", then asked GET /connectors/{obs.name}/status"
        trace = obs.failed_trace()
        if trace:
            explain(did=did, saw=f"state FAILED: {trace}", expected="connector and task RUNNING",
                    nudge=failure_nudge(trace), seen_in="Connect's REST API")
        tasks = obs.status.get("tasks", [])
        states = [obs.status.get("connector", {}).get("state"), *(t.get("state") for t in tasks)]
        if len(tasks) != 1 or any(s != "RUNNING" for s in states):
            explain(did=did, saw=f"connector and tasks in states {states} ({len(tasks)} tasks)",
                    expected="the connector and exactly one task, all RUNNING",
                    nudge="one file has one writer: with several tasks, several writers append to it at once."
                    if len(tasks) > 1 else "how many tasks may this connector start?", seen_in="Connect's REST API")
        if not obs.caught_up:
            explain(did=did + f", and read the committed offsets of group connect-{obs.name}",
                    saw=f"committed {obs.committed}, the topic ends at {obs.ends}",
                    expected="every record consumed and committed, the poison ones included",
                    nudge="a sink that is RUNNING but stuck is no better than a failed one: what holds it back?")


def test_config_names_converters_retries_and_error_logging(kafka, impl, connect_url, tmp_path):
    """The config names its converters, retries transient errors (bounded) and logs every tolerated error.

    Read from the configuration Connect runs the connector with (GET /connectors/NAME/config)."""
    obs = observe(kafka, impl, connect_url, tmp_path, "single")
    require_running_config(obs)
    did = f"registered sink_config({obs.topic!r}, ...) and read GET /connectors/{obs.name}/config"
    stored = obs.stored
    unnamed = [k for k in ("key.converter", "value.converter") if not stored.get(k)]
    if unnamed:
        explain(did=did, saw=f"no {' and no '.join(unnamed)}: the connector runs with this worker's defaults",
                expected="both converters named in the connector's own config", seen_in="Connect's REST API",
                nudge="the worker's defaults belong to whoever runs the worker; on the next worker they may "
                "differ, and the sink reads the same bytes differently.")

    def number(key: str, default: int) -> int:
        try:
            return int(stored.get(key, default))
        except ValueError:
            explain(did=did, saw=f"{key}={stored[key]!r}", expected="a number of milliseconds",
                    seen_in="Connect's REST API", nudge="Connect reads durations as whole milliseconds.")
        return default

    timeout, delay = number("errors.retry.timeout", 0), number("errors.retry.delay.max.ms", 60000)
    if not 60_000 <= timeout <= 600_000:
        explain(did=did, saw=f"errors.retry.timeout={timeout}", expected="between 60000 (one minute) and 600000",
                seen_in="Connect's REST API",
                nudge="0 (the default) gives a transient failure no second try, and -1 retries forever while "
                "the sink stands still without anybody noticing." if timeout <= 0 else
                "retries that are too short or too long: how long may one record hold the sink up?")
    if not 0 < delay <= 10_000:
        explain(did=did, saw=f"errors.retry.delay.max.ms={delay}", expected="more than 0 and at most 10000",
                seen_in="Connect's REST API", nudge="between attempts Connect backs off exponentially up to this "
                "bound (one minute by default): a recovered system waits that long for the next try.")
    for key in ("errors.log.enable", "errors.log.include.messages"):
        if str(stored.get(key, "false")).lower() != "true":
            explain(did=did, saw=f"{key}={stored.get(key, '(not set: false)')}", expected=f"{key}=true",
                    seen_in="Connect's REST API",
                    nudge="with errors.tolerance=all a failure no longer stops anything, so the worker's log is "
                    "where an operator first sees it; which record failed belongs in that line.")


def _check_config(kafka, tmp_path, file_name: str) -> tuple[str, dict]:
    """A correct file-sink config of the check's own (register() is graded apart from sink_config())."""
    topic = kafka.create_topic(partitions=1)
    return topic, {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "tasks.max": "1",
                   "topics": topic, "file": str(tmp_path / file_name),
                   "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                   "value.converter": "org.apache.kafka.connect.storage.StringConverter"}


def test_register_creates_updates_and_reports_refusals(kafka, impl, connect_url, tmp_path):
    """register() creates a connector, updates it when called again, and raises with Connect's reason on a refusal."""
    rest = ConnectRest(connect_url)
    name = kafka.unique("reg")
    topic, config = _check_config(kafka, tmp_path, "first.txt")
    did = f"called register(connect_url, {name!r}, <a file sink config for {topic!r}>)"
    try:
        try:
            answer = _register(impl, connect_url, name, config)
        except NotImplementedError as exc:
            explain(did=did, saw=f"NotImplementedError: {exc}", expected="the connector created",
                    nudge="register() is still the stub: Connect's REST API takes a connector's config as JSON.",
                    seen_in="your function")
        stored = _stored(rest, name, config)
        if stored != config:
            explain(did=did + f", then GET /connectors/{name}/config", saw=f"{stored}", expected=f"{config}",
                    nudge="send the config as it was given, to the connector of that name.",
                    seen_in="Connect's REST API")
        answered = {k: v for k, v in (answer.get("config") or {}).items() if k != "name"} \
            if isinstance(answer, dict) else None
        if answered != config or answer.get("name") != name or "tasks" not in answer:
            explain(did=did, saw=f"it returned {answer!r:.300}", expected=f"Connect's answer: a dict with name "
                    f"{name!r}, the config and the tasks", seen_in="your function's return value",
                    nudge="Connect answers a created or updated connector with its name, config and tasks.")
        try:  # the worker rebalances to start the new connector; the update comes after that
            rest.wait_running(name, timeout=30)
        except ConnectError as exc:
            explain(did=did, saw=f"the connector it created did not run: {exc.message}", expected="RUNNING",
                    seen_in="Connect's REST API", nudge="was the config sent as it was given?")
        changed = {**config, "file": str(tmp_path / "second.txt")}
        try:
            _register(impl, connect_url, name, changed)
        except Exception as exc:  # noqa: BLE001 - any exception is the learner's failure to show
            explain(did=did + ", then called it again with another file", saw=f"{type(exc).__name__}: {exc}",
                    expected="the existing connector updated", seen_in="your function",
                    nudge="one endpoint of Connect's REST API creates a connector or updates it, whichever is needed.")
        stored = _stored(rest, name, changed)
        if stored.get("file") != changed["file"]:
            explain(did=did + ", then called it again with another file", saw=f"file={stored.get('file')}",
                    expected=f"file={changed['file']}", seen_in="Connect's REST API",
                    nudge="the second call must change the running connector's config.")
    finally:
        rest.delete(name)
    _refusal(kafka, impl, rest, connect_url, topic)


def _register(impl, connect_url: str, name: str, config: dict):
    """The learner's register(), called again while Connect answers "409, rebalancing: retry" (the shared
    worker rebalances after every connector created or deleted; that refusal is no verdict on the config)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return impl.register(connect_url, name, config)
        except RuntimeError as exc:
            if not any(word in str(exc).lower() for word in REBALANCING) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _stored(rest: ConnectRest, name: str, want: dict) -> dict:
    """The connector's stored config once it equals `want`, or as it is after 10 s: the worker answers GET
    from its own snapshot, which follows an accepted PUT a moment later (a 404 or the old config until then)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            stored = {k: v for k, v in rest.config(name).items() if k != "name"}  # Connect adds the name
        except ConnectError as exc:
            stored = {"(HTTP error)": exc.message[:200]}
        if stored == want or time.monotonic() > deadline:
            return stored
        time.sleep(0.2)


def _refusal(kafka, impl, rest: ConnectRest, connect_url: str, topic: str) -> None:
    bad = {"connector.class": f"org.example.NoSuch{kafka.unique('Sink').replace('-', '')}", "topics": topic}
    names = kafka.unique("refused"), kafka.unique("refused")
    try:
        try:
            rest.put_config(names[0], bad)
            reason = ""
        except ConnectError as exc:
            reason = exc.message
        did = f"called register(connect_url, {names[1]!r}, {bad})"
        try:
            _register(impl, connect_url, names[1], bad)
        except RuntimeError as exc:
            if reason[:80] not in str(exc):
                explain(did=did, saw=f"RuntimeError: {str(exc)[:300]}", expected=f"its message to hold Connect's "
                        f"reason: {reason[:160]!r}", seen_in="your function",
                        nudge="the HTTP status alone does not say which setting is wrong; Connect's answer does.")
            return
        except Exception as exc:  # noqa: BLE001 - the wrong kind of exception is the finding
            explain(did=did, saw=f"{type(exc).__name__}: {str(exc)[:300]}", expected="a RuntimeError with "
                    "Connect's reason", seen_in="your function", nudge="the README names the exception to raise.")
        explain(did=did, saw="it returned normally", expected=f"RuntimeError: Connect refused the config "
                f"({reason[:160]})", seen_in="your function",
                nudge="an HTTP error answer is Connect saying no: the caller must hear it.")
    finally:
        for name in names:
            rest.delete(name)


def test_dead_letters_summarises_each_record(kafka, impl):
    """dead_letters() reads the DLQ from its start and summarises each record from its __connect.errors.* headers."""
    topic, want = dlq_like(kafka)
    wrote = f"wrote {len(want)} dead records (3 with context headers, 1 without) to {topic!r}, then called "
    for count in (2, len(want)):  # the first `count` records, every call from the start
        did = wrote + f"dead_letters(bootstrap, {topic!r}, {count}, 6)"
        try:
            got = impl.dead_letters(kafka.bootstrap_servers, topic, count, 6)
        except NotImplementedError as exc:
            explain(did=did, saw=f"NotImplementedError: {exc}", expected="a summary per record",
                    nudge="dead_letters() is still the stub: a consumer that reads the topic from its start.",
                    seen_in="your function")
        _same_summaries(did, got, want[:count])
    did = wrote + f"dead_letters(bootstrap, {topic!r}, {len(want) + 3}, 3)"
    started = time.monotonic()
    more = impl.dead_letters(kafka.bootstrap_servers, topic, len(want) + 3, 3)
    took = time.monotonic() - started
    if more != want or not 2.5 <= took <= 8:
        explain(did=did, saw=f"after {took:.1f}s, {len(more)} summaries", expected=f"all {len(want)} after about 3s",
                seen_in="your function's return value",
                nudge="fewer records than asked for is an answer too: return what arrived once timeout_s is up.")


def _same_summaries(did: str, got, want: list[dict]) -> None:
    if not isinstance(got, list) or len(got) != len(want):
        explain(did=did, saw=f"{got!r:.300}", expected=f"a list of {len(want)} summaries, in the topic's order",
                seen_in="your function's return value",
                nudge="count is how many records to read, then return." if isinstance(got, list) and got else
                "where does a consumer of a new group start reading, unless told otherwise?")
    for n, (summary, expected) in enumerate(zip(got, want, strict=True)):
        if summary != expected:
            wrong = {k: summary.get(k, "(missing)") for k in expected if summary.get(k, object()) != expected[k]} \
                if isinstance(summary, dict) else summary
            explain(did=did, saw=f"record {n} summarised with {wrong!r:.300}",
                    expected=f"{ {k: expected[k] for k in (wrong if isinstance(wrong, dict) else expected)} }",
                    seen_in="your function's return value",
                    nudge="partition and offset are numbers; class_name is the class that failed, exception the "
                    "exception's class; a header that is absent is None." if isinstance(wrong, dict) else
                    "each summary is a dict with the README's keys.")
