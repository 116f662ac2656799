"""Grading on a shared, secured cluster (issue 16 part 6): `--client-config FILE` and `--prefix`.

The broker here is the local one with SASL/SCRAM-SHA-512 listeners, the KRaft StandardAuthorizer and
prefixed ACLs that allow the grading principal only names under `grading.` (grader/broker/secure.py).
The all-katas sweep is benchmarks/shared_cluster.py (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import ROOT, run_grade

from grader import clientconfig, clientroute
from grader.errors import UsageError

PREFIX = "grading."


# ---------------------------------------------------------------------- the file (no broker)


def write(tmp_path, text: str):
    path = tmp_path / "client.properties"
    path.write_text(text)
    return path


def test_java_style_file_with_comments_and_jaas_becomes_librdkafka_settings(tmp_path):
    path = write(tmp_path, "# Confluent-style client.properties\n! a Java comment\n\nbootstrap.servers=h:9092\n"
                 "security.protocol = SASL_SSL\nsasl.mechanism: PLAIN\nsasl.jaas.config=org.apache.kafka.common."
                 "security.plain.PlainLoginModule required username='key' password=\"se=cr;et\";\n"
                 "kafka-katas.prefix=team-a.\n")
    settings = clientconfig.load(path, None)
    assert settings.bootstrap_servers == "h:9092"
    assert settings.client_properties() == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                                            "sasl.username": "key", "sasl.password": "se=cr;et"}
    assert settings.prefix == "team-a."
    assert clientconfig.load(path, "other-").prefix == "other-"  # --prefix wins over the file


@pytest.mark.parametrize(("text", "expected"), [
    ("security.protocol=SASL_PLAINTEXT\nsession.timeout.ms=45000\n",
     "line 2: `session.timeout.ms` is not a connection or security setting"),
    ("security.protocol=SASL_PLAINTEXT\njust some words\n", "line 2: expected key=value, found 'just some words'"),
    ("security.protocol=SSL\nssl.ca.location=/nonexistent/ca.pem\n",
     "line 2: librdkafka refuses `ssl.ca.location=/nonexistent/ca.pem`"),
    ("sasl.username=a\nsasl.username=b\n", "line 2: `sasl.username` was already set on line 1"),
    ("sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required;\n",
     "line 1: sasl.jaas.config names a login module librdkafka cannot use"),
    ("kafka-katas.prefix=no spaces/here\n", "is not a usable name prefix"),
])
def test_a_bad_file_names_its_line_and_the_next_command(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        clientconfig.load(path, None)
    assert expected in caught.value.what
    assert str(path) in caught.value.what
    assert "run the same command again" in caught.value.next_step


def test_a_secret_librdkafka_refuses_is_never_printed(tmp_path):
    path = write(tmp_path, "security.protocol=SSL\nssl.key.password=hunter2\nssl.key.location=/nonexistent\n")
    with pytest.raises(UsageError) as caught:
        clientconfig.load(path, None)
    assert "hunter2" not in caught.value.render()


def test_every_client_gets_the_cluster_settings_and_ids_under_the_run_prefix():
    try:
        clientroute.configure({"security.protocol": "SASL_PLAINTEXT"}, "grading.ab12-", "grading.")
        conf = clientroute.client_config({"bootstrap.servers": "h:1", "group.id": "ledger",
                                          "transactional.id": "grading.ab12-mine", "security.protocol": "x"})
        assert conf == {"bootstrap.servers": "h:1", "group.id": "grading.ab12-ledger",
                        "transactional.id": "grading.ab12-mine", "security.protocol": "SASL_PLAINTEXT"}
        assert clientroute.own_prefix("kk-ab12-k01") == "grading.ab12-k01"
    finally:
        clientroute.configure(None)
    assert clientroute.client_config({"group.id": "ledger"}) == {"group.id": "ledger"}  # a plain run: unchanged


def test_cli_refuses_a_bad_file_with_exit_2(tmp_path):
    path = write(tmp_path, "security.protocol=SASL_PLAINTEXT\nacks=0\n")
    proc = run_grade("kata-01", "--client-config", str(path), "--bootstrap-servers", "127.0.0.1:9")
    assert proc.returncode == 2, proc.stderr
    assert f"{path}, line 2: `acks` is not a connection or security setting" in proc.stderr
    assert "Next: remove that line" in proc.stderr


def test_cli_needs_the_clusters_address_and_no_broker_of_its_own(tmp_path):
    path = write(tmp_path, "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u\n"
                 "sasl.password=p\n")
    proc = run_grade("kata-01", "--client-config", str(path), env={"KAFKA_BOOTSTRAP_SERVERS": ""})
    assert proc.returncode == 2, proc.stderr
    assert f"--client-config ({path}) describes a cluster you run, and no address was given." in proc.stderr
    proc = run_grade("kata-01", "--client-config", str(path), "--bootstrap-servers", "h:1", "--broker", "local")
    assert proc.returncode == 2, proc.stderr
    assert "--broker local starts a new one" in proc.stderr


# ---------------------------------------------------------------------- against the SASL + ACL broker


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """The local broker secured like a shared cluster, and the grading principal's client config file."""
    from grader.broker.local import start_local
    from grader.broker.secure import SaslSetup

    setup = SaslSetup(prefix=PREFIX)
    broker = start_local(lambda m: None, secure=setup)
    path = setup.write_client_config(tmp_path_factory.mktemp("sasl") / "grader.properties", broker.bootstrap_servers)
    yield setup, broker, path
    broker.stop()


def grade_on(path, *args):
    # The file holds the address; a KAFKA_BOOTSTRAP_SERVERS of the environment would win over it.
    return run_grade(*args, "--client-config", str(path), "--json", timeout=240, env={"KAFKA_BOOTSTRAP_SERVERS": ""})


def stray_file(tmp_path):
    """kata-01's solution, publishing to a topic of its own choosing instead of the one it was given."""
    stray = tmp_path / "producer.py"
    stray.write_text((ROOT / "solutions/kata-01-keyed-partitioning/producer.py").read_text()
                     .replace("def publish_orders(bootstrap_servers: str, topic: str,",
                              "def publish_orders(bootstrap_servers: str, given: str,")
                     .replace("\n    producer = Producer(", "\n    topic = 'orders'\n    producer = Producer(", 1))
    return stray


@pytest.fixture(scope="module")
def graded(secured, tmp_path_factory):
    """kata-01's solution, its stub and a file that strays outside the prefix, graded on the secured cluster."""
    setup, broker, path = secured
    return {"solution": grade_on(path, "kata-01", "--solution"), "stub": grade_on(path, "kata-01"),
            "stray": grade_on(path, "kata-01", "--file", str(stray_file(tmp_path_factory.mktemp("stray")))),
            # kata-10's solution reads with a consumer group it names itself (`table-<uuid>`).
            "own_group": grade_on(path, "kata-10", "--solution")}


def said(proc) -> str:
    return proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.broker
def test_solution_passes_and_stub_fails_on_the_secured_cluster(graded):
    assert graded["solution"].returncode == 0, said(graded["solution"])
    assert json.loads(graded["solution"].stdout)["status"] == "pass"
    assert graded["stub"].returncode == 1, said(graded["stub"])
    assert json.loads(graded["stub"].stdout)["status"] == "fail"


@pytest.mark.broker
def test_a_group_id_the_graded_code_picks_itself_is_put_under_the_runs_prefix(graded):
    """Without that, the ACLs (groups under `grading.` only) would refuse kata-10's solution."""
    assert graded["own_group"].returncode == 0, said(graded["own_group"])


@pytest.mark.broker
def test_a_run_that_strays_outside_its_prefix_fails_with_an_authorization_message(graded):
    proc = graded["stray"]
    assert proc.returncode == 1, said(proc)
    messages = "\n".join(t.get("message", "") for t in json.loads(proc.stdout)["tests"])
    assert "topic authorization failed" in messages.lower(), messages[-2000:]
    assert ("may only use topics, consumer groups and transactional ids whose names start with "
            f"'{PREFIX}") in messages


@pytest.mark.broker
def test_nothing_is_left_behind(secured, graded):
    setup, broker, path = secured
    from grader import shared_run

    admin_view = clientconfig.ClientSettings(setup.admin_properties(), PREFIX)
    deadline = time.monotonic() + 30  # topic deletion completes asynchronously
    while True:
        everything = shared_run.names(broker.bootstrap_servers, admin_view, "")
        left = {kind: [n for n in found if not n.startswith("__")] for kind, found in everything.items()}
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Neither under the prefix nor outside it: only the broker's internal topics remain.
    assert left == {"topics": [], "groups": []}


@pytest.mark.broker
def test_cleanup_deletes_the_runs_topics_and_groups_and_nothing_else(secured):
    """What a run made under its prefix (a topic, a group with committed offsets) goes; another run's stays."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from grader import shared_run

    setup, broker, path = secured
    mine = clientconfig.ClientSettings(setup.grader_properties(), PREFIX)
    conf = {"bootstrap.servers": broker.bootstrap_servers, "log_level": 0, **setup.grader_properties()}
    admin = AdminClient(conf)
    for topic in ("grading.run1-made", "grading.run2-other"):
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    consumer = Consumer({**conf, "group.id": "grading.run1-group"})
    consumer.commit(offsets=[TopicPartition("grading.run1-made", 0, 0)], asynchronous=False)
    consumer.close()
    assert shared_run.names(broker.bootstrap_servers, mine, "grading.run1-") == {
        "topics": ["grading.run1-made"], "groups": ["grading.run1-group"]}
    try:
        assert shared_run.cleanup(broker.bootstrap_servers, mine, "grading.run1-") == {"topics": [], "groups": []}
        assert shared_run.names(broker.bootstrap_servers, mine, "grading.run2-")["topics"] == ["grading.run2-other"]
    finally:
        admin.delete_topics(["grading.run2-other"])["grading.run2-other"].result(timeout=30)


@pytest.mark.broker
def test_wrong_credentials_are_an_infrastructure_error_with_the_reason(secured, tmp_path):
    setup, broker, path = secured
    wrong = tmp_path / "wrong.properties"
    wrong.write_text(path.read_text().replace(f"sasl.password={setup.grader_password}",
                                              "sasl.password=pw-not-this-one"))
    proc = run_grade("kata-01", "--client-config", str(wrong), timeout=120, env={"KAFKA_BOOTSTRAP_SERVERS": ""})
    assert proc.returncode == 3, said(proc)
    assert f"did not answer with the settings of {wrong}" in proc.stderr
    assert "Authentication failed" in proc.stderr
    assert "pw-not-this-one" not in proc.stderr + proc.stdout  # the password is never echoed


@pytest.mark.broker
def test_broker_up_sasl_makes_a_secured_reusable_broker_with_its_client_config(tmp_path):
    from grader.broker import jars

    cache = tmp_path / "cache"  # private: never a developer's reusable broker
    version_dir = cache / f"kafka-{jars.KAFKA_VERSION}"
    version_dir.mkdir(parents=True)
    for name in ("lib", "tools-lib", "cds"):
        if (jars.jar_dir().parent / name).exists():
            (version_dir / name).symlink_to(jars.jar_dir().parent / name)
    # No class-data archive: one for this private cache would be built first (tens of seconds).
    env = {"KAFKA_KATAS_CACHE": str(cache), "KAFKA_BOOTSTRAP_SERVERS": "", "KAFKA_KATAS_FAST_START": "0"}
    up = run_grade("broker", "up", "--sasl", env=env)
    try:
        assert up.returncode == 0, up.stderr
        config = cache / "sasl-grader.properties"
        assert f"the grading principal's client config is {config}" in up.stdout
        assert "kafka-katas.prefix=grading." in config.read_text()
        plain = run_grade("kata-01", "--solution", env=env)
        assert plain.returncode == 2, plain.stderr
        assert f"Next: add `--client-config {config}`" in plain.stderr
        from grader import shared_run  # the file's principal gets in, and may list its prefix

        settings = clientconfig.load(config, None)
        assert shared_run.names(settings.bootstrap_servers, settings, PREFIX) == {"topics": [], "groups": []}
        from grader.broker.base import metadata_answers

        assert not metadata_answers(settings.bootstrap_servers, timeout=2.0)  # and nobody without credentials
    finally:
        run_grade("broker", "down", env=env)
    assert not (cache / "sasl-grader.properties").exists()
