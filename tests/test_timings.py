"""The validation-time cache that lets `grade validate --jobs N` start the longest katas first."""

from types import SimpleNamespace

from grader import timings


def kata(kata_id, own_cluster=False):
    return SimpleNamespace(id=kata_id, needs_own_cluster=own_cluster)


def test_times_round_trip_per_course(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_KATAS_CACHE", str(tmp_path))
    timings.save("Course A", {"kata-01": 3.04, "kata-02": 70.0})
    timings.save("Course B", {"kata-01": 9.0})
    timings.save("Course A", {"kata-02": 65.0})
    assert timings.load("Course A") == {"kata-01": 3.0, "kata-02": 65.0}
    assert timings.load("Course B") == {"kata-01": 9.0}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_corrupt_cache_only_costs_scheduling(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_KATAS_CACHE", str(tmp_path))
    (tmp_path / "validate-times.json").write_text('{"Course A": {"kata-01": "slow"')
    assert timings.load("Course A") == {}
    timings.save("Course A", {"kata-01": 2.0})
    assert timings.load("Course A") == {"kata-01": 2.0}


def test_longest_first_with_unknown_cluster_katas_early():
    katas = [kata("kata-01"), kata("kata-02"), kata("kata-03"), kata("kata-19", own_cluster=True)]
    order = timings.longest_first(katas, {"kata-02": 70.0, "kata-03": 10.0})
    assert [k.id for k in order] == ["kata-02", "kata-19", "kata-03", "kata-01"]
