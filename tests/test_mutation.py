"""Mutation testing of checks: the operator catalog, mutant ids, and `grade validate --mutants`
and known-bad patches on a small course against a real broker."""

import difflib
import json
import shutil
import textwrap
import uuid
import xml.etree.ElementTree as ET

import pytest
from conftest import OK_COURSE, ROOT, run_grade

from grader.catalog import load_course
from grader.mutation.generate import generate

SAMPLE = textwrap.dedent('''
    """A consumer with the classic places to go wrong."""
    import time

    from confluent_kafka import Consumer, Producer


    def consume(bootstrap, topic, group, process, should_stop):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                             "enable.auto.commit": False, "isolation.level": "read_committed",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([topic], on_revoke=lambda c, ps: c.commit(asynchronous=False))
        try:
            while not should_stop():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                process(msg)
                consumer.commit(message=msg, asynchronous=False)
        finally:
            consumer.close()


    def publish(bootstrap, topic, items, seconds):
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                             "transactional.id": "tx-1", "message.timeout.ms": int(seconds * 1000)})
        producer.init_transactions()
        producer.begin_transaction()
        for key, value in items:
            producer.produce(topic, key=key, value=value)
        producer.send_offsets_to_transaction([], None)
        producer.commit_transaction()
        if producer.flush(10):
            raise RuntimeError(f"{len(items)} not delivered after {seconds + 1}s")
        time.sleep(1)
''')


def mutants_of(tmp_path, source=SAMPLE):
    path = tmp_path / "sample.py"
    path.write_text(source)
    return generate(path)


def descriptions(mutants):
    return {(m.operator, m.description) for m in mutants}


def test_kafka_aware_operators_find_the_classic_mistakes(tmp_path):
    found = descriptions(mutants_of(tmp_path))
    for expected in [
        ("config-flip", "`enable.auto.commit`: `False` -> `True`"),
        ("config-flip", "`isolation.level`: `'read_committed'` -> `'read_uncommitted'`"),
        ("config-flip", "`auto.offset.reset`: `'earliest'` -> `'latest'`"),
        ("config-flip", "`enable.idempotence`: `True` -> `False`"),
        ("config-flip", "`acks`: `'all'` -> `'1'`"),
        ("config-drop", "dropped config `transactional.id`"),
        ("commit-without-position", "`consumer.commit(message=msg, asynchronous=False)` -> "
                                    "`consumer.commit(asynchronous=False)`"),
        ("commit-async", "`asynchronous=False` -> `True`"),
        ("drop-callback", "dropped `on_revoke=` from `subscribe()`"),
        ("drop-kafka-call", "removed `consumer.close()`"),
        ("drop-kafka-call", "removed `producer.send_offsets_to_transaction([], None)`"),
        ("drop-kafka-call", "`producer.flush(10)` -> `0`"),
        ("key-none", "`key=key` -> `key=None`"),
        ("ms-factor", "`seconds * 1000` -> `seconds`"),
    ]:
        assert expected in found, f"{expected} not generated; got {sorted(found)}"
    tx = [m for m in mutants_of(tmp_path) if m.description.startswith("`transactional.id`")]
    assert tx and "uuid4" in tx[0].source


def test_generic_operators_and_what_they_leave_alone(tmp_path):
    mutants = mutants_of(tmp_path)
    found = descriptions(mutants)
    assert ("compare", "`msg is None` -> `msg is not None`") in found
    assert any(op == "remove-raise" and d.startswith("removed `raise RuntimeError(") for op, d in found)
    assert ("constant", "`10` -> `0`") in found  # flush(10) -> flush(0)
    assert any(m.operator == "early-return" for m in mutants)
    # Numbers inside an error message, and how long poll()/sleep() wait, change no behaviour.
    assert not any("`1` -> `2`" in d and op in ("constant", "arith") for op, d in found)
    assert ("constant", "`0.5` -> `0`") not in found
    # Two statements that share no name and do not both call anything are never swapped.
    independent = "def f(a):\n    x = 1\n    y = 2\n    return x + y\n"
    assert not [m for m in mutants_of(tmp_path, independent) if m.operator == "swap-statements"]


def test_every_mutant_is_one_distinct_compilable_change(tmp_path):
    mutants = mutants_of(tmp_path)
    assert len({m.source for m in mutants}) == len(mutants)
    assert len({m.id for m in mutants}) == len(mutants)
    for m in mutants:
        compile(m.source, "mutant.py", "exec")
        changed = [line for line in m.diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert changed, m.id


def test_mutant_ids_survive_unrelated_edits(tmp_path):
    before = {m.id: m.description for m in mutants_of(tmp_path)}
    moved = SAMPLE.replace('import time\n', 'import time\n\n# a comment\nLIMIT = "x"\n\n')
    after = {m.id: m.description for m in mutants_of(tmp_path, moved)}
    assert set(before) <= set(after)


def test_every_course_solution_generates_mutants():
    for kata in load_course(ROOT).katas:
        mutants = generate(kata.solution_path)
        assert len(mutants) >= 3, f"{kata.id}: only {len(mutants)} mutants"


# ------------------------------------------------------------------ against a real broker

@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(OK_COURSE, root)
    return root


def kata_yaml(course):
    return course / "katas" / "kata-01-echo" / "kata.yaml"


def validate(course, bootstrap, *extra):
    result = run_grade("validate", "kata-01", "--course", str(course), "--json", "--bootstrap-servers", bootstrap,
                       *extra)
    return result, json.loads(result.stdout) if result.stdout.strip().startswith("{") else None


@pytest.mark.broker
def test_validate_mutants_scores_the_checks_and_lists_survivors(course, bootstrap, tmp_path):
    result, report = validate(course, bootstrap, "--mutants", "--junit", str(tmp_path / "m.xml"))
    mutation = report["katas"][0]["mutation"]
    assert mutation["generated"] >= 3 and mutation["run"] == mutation["generated"]
    # The echo check reads the value back: removing produce() or flush() cannot survive it...
    killed = set(mutation["killed_by"])
    assert any(i.startswith("drop-kafka-call:send:") for i in killed)
    # ...and a survivor is reported with its diff, failing validation below 90%.
    if mutation["survivors"]:
        assert result.returncode == 1
        assert all(s["diff"].startswith("@@") for s in mutation["survivors"])
        assert any("mutation score" in p for p in report["katas"][0]["problems"])
    cases = [c for c in ET.parse(tmp_path / "m.xml").getroot().iter("testcase")
             if c.get("classname") == "kata-01.mutants"]
    assert len(cases) == mutation["run"]
    assert sum(c.find("failure") is not None for c in cases) == len(mutation["survivors"])


@pytest.mark.broker
def test_equivalent_declarations_are_checked(course, bootstrap):
    mutants = generate(course / "solutions" / "kata-01-echo" / "echo.py")
    text = kata_yaml(course).read_text()
    declared = "".join(f"  - id: {m.id}\n    why: test\n" for m in mutants[:2])
    kata_yaml(course).write_text(text + "equivalent_mutants:\n" + declared + "  - id: constant:send:000000\n"
                                 "    why: an old one\n")
    result, report = validate(course, bootstrap, "--mutants")
    assert result.returncode == 1
    problems = "\n".join(report["katas"][0]["problems"])
    assert "equivalent mutant 'constant:send:000000' is no longer generated" in problems
    assert f"2 of {len(mutants)} generated mutants are declared equivalent, more than 20%" in problems
    assert report["katas"][0]["mutation"]["run"] == len(mutants) - 2


@pytest.mark.broker
def test_a_known_bad_patch_is_applied_to_a_copy_and_a_stale_one_is_named(course, bootstrap):
    bad = course / "checks" / "kata-01-echo" / "known_bad"
    (bad / "wrong_value.py").unlink()
    solution_path = course / "solutions" / "kata-01-echo" / "echo.py"
    wrong = solution_path.read_text().replace("value=value.encode()", "value=value.upper().encode()")
    (bad / "wrong_value.patch").write_text("".join(difflib.unified_diff(
        solution_path.read_text().splitlines(keepends=True), wrong.splitlines(keepends=True), "a/echo.py",
        "b/echo.py")))
    kata_yaml(course).write_text(kata_yaml(course).read_text().replace("wrong_value.py", "wrong_value.patch"))
    solution = (course / "solutions" / "kata-01-echo" / "echo.py").read_text()
    result, report = validate(course, bootstrap)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["katas"][0]["notes"] == ["known-bad wrong_value.patch caught by test_value_arrives"]
    assert (course / "solutions" / "kata-01-echo" / "echo.py").read_text() == solution  # applied to a copy
    graded = run_grade("kata-01", "--course", str(course), "--file", str(bad / "wrong_value.patch"),
                       "--bootstrap-servers", bootstrap)
    assert graded.returncode == 1, graded.stdout
    assert ("Next: the mistake fails, as a known-bad must; `grade validate kata-01` checks that it fails in the "
            "check kata.yaml names.") in " ".join(graded.stdout.split())
    changed = solution.replace("value.encode()", "value.encode('utf-8')")
    (course / "solutions" / "kata-01-echo" / "echo.py").write_text(changed)
    result, report = validate(course, bootstrap)
    assert result.returncode == 1
    assert f"{bad / 'wrong_value.patch'}: the known-bad patch no longer applies" in report["katas"][0]["problems"][0]


@pytest.mark.broker
def test_rerunning_one_mutant_runs_the_solution_and_that_mutant_only(course, bootstrap):
    mutant = generate(course / "solutions" / "kata-01-echo" / "echo.py")[0]
    result, report = validate(course, bootstrap, "--mutants", "--mutant", mutant.id)
    kata = report["katas"][0]
    assert [r["target"] for r in kata["runs"]] == ["solution"]
    assert kata["mutation"]["run"] == 1
    unknown, _ = validate(course, bootstrap, "--mutants", "--mutant", "constant:send:ffffff")
    assert unknown.returncode == 2
    assert "kata-01 generates no mutant with the id 'constant:send:ffffff'" in unknown.stderr
    assert "grade validate kata-01 --list-mutants" in unknown.stderr


@pytest.mark.broker
def test_a_known_bad_mistake_caught_only_some_of_the_time_is_named(course, bootstrap):
    # Right the first time it is graded, wrong the second: the named check "passes, then catches it". The
    # learner host sees nothing that outlives a run (a fresh copy in a fresh scratch, under bwrap not even the
    # course), so the mistake remembers its first run on the broker: a marker topic.
    marker = f"kk-flaky-marker-{uuid.uuid4().hex[:8]}"
    flaky = course / "checks" / "kata-01-echo" / "known_bad" / "wrong_value.py"
    flaky.write_text(
        "from confluent_kafka import Producer\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\n\n"
        "def send(bootstrap_servers, topic, value):\n"
        "    admin = AdminClient({'bootstrap.servers': bootstrap_servers})\n"
        f"    first = {marker!r} not in admin.list_topics(timeout=10).topics\n"
        "    if first:\n"
        f"        admin.create_topics([NewTopic({marker!r}, 1, 1)])[{marker!r}].result(10)\n"
        "    producer = Producer({'bootstrap.servers': bootstrap_servers})\n"
        "    producer.produce(topic, value=(value if first else value.upper()).encode())\n"
        "    producer.flush(10)\n")
    result, report = validate(course, bootstrap)
    assert result.returncode == 1
    assert report["katas"][0]["problems"] == [
        "kata-01: known-bad wrong_value.py is caught by 'test_value_arrives' only some of the time (it passed "
        "that check once, then failed it): make the check deterministic for this mistake (cause the failure for "
        "real instead of waiting for it to happen)."]
