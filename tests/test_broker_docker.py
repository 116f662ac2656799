"""The docker provider without a Docker engine (CI has none): its settings match the
local broker and docker-compose.yml, and `auto` falls back to the local broker."""

from pathlib import Path

import yaml
from conftest import ROOT

from grader import KAFKA_VERSION
from grader.broker import docker

SERVER_PROPERTIES = (ROOT / "grader" / "broker" / "server.properties").read_text()


def _local_setting(name: str) -> str:
    for line in SERVER_PROPERTIES.splitlines():
        if line.startswith(name + "="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{name} not in server.properties")


def _env_to_property(key: str) -> str:
    return key.removeprefix("KAFKA_").lower().replace("_", ".")


def test_container_env_matches_the_local_broker():
    env = docker.container_env(19092)
    skip = {"node.id", "process.roles", "listeners", "advertised.listeners", "controller.listener.names",
            "listener.security.protocol.map", "controller.quorum.voters"}
    checked = 0
    for key, value in env.items():
        prop = _env_to_property(key)
        if prop in skip:
            continue
        local = _local_setting(prop)
        if "{" not in local:  # RF placeholders are 1 for one broker
            assert local == value, f"{prop}: local {local}, docker {value}"
        else:
            assert value == "1", prop
        checked += 1
    assert checked >= 15
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:19092"


def test_compose_file_uses_the_same_version_and_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["kafka"]  # the default (no profile) single broker
    assert service["image"] == f"apache/kafka:{KAFKA_VERSION}" == docker.IMAGE
    assert service["ports"] == ["127.0.0.1:9092:9092"]  # loopback only
    env = {k: str(v) for k, v in service["environment"].items()}
    for key, value in docker.container_env(9092).items():
        if key != "KAFKA_ADVERTISED_LISTENERS":
            assert env.get(key) == value, key


def test_no_daemon_means_not_available(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    assert docker.docker_available() is False


def test_docker_mode_without_daemon_is_an_infrastructure_error(monkeypatch, tmp_path):
    import pytest

    from grader.errors import InfraError

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(InfraError) as err:
        docker.start_docker(lambda m: None)
    assert "No Docker daemon answered" in err.value.what
    assert "--broker local" in err.value.next_step


def test_auto_skips_docker_without_a_daemon(monkeypatch, tmp_path):
    from grader import broker

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_KATAS_CACHE", str(tmp_path / "empty-cache"))  # no reusable broker recorded
    chosen = []
    monkeypatch.setattr("grader.broker.local.start_local", lambda progress: chosen.append("local") or "L")
    assert broker.start("auto", None, lambda m: None) == "L"
    assert chosen == ["local"]
    assert Path(tmp_path / "empty-cache").exists() is False


def test_compose_cluster_profile_has_three_voters_on_loopback():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    nodes = {name: svc for name, svc in compose["services"].items() if "cluster" in svc.get("profiles", [])}
    assert sorted(nodes) == ["kafka-1", "kafka-2", "kafka-3"]
    ids = sorted(int(svc["environment"]["KAFKA_NODE_ID"]) for svc in nodes.values())
    assert ids == [1, 2, 3]
    voters = {svc["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for svc in nodes.values()}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    for svc in nodes.values():
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"])
        assert svc["image"] == docker.IMAGE
        assert str(svc["environment"]["KAFKA_MIN_INSYNC_REPLICAS"]) == "2"
