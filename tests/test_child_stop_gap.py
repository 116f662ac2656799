"""grader/child.py's should_stop(): the longest gap between two calls, for checks that time "should_stop() at
least once a second" (ChildRun.max_stop_gap). A fake clock, no broker, no sleeping."""

import json
import pathlib

import pytest

from grader import child


class Clock:
    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        return self.now


@pytest.fixture
def setup(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(child, "time", clock)
    spec = {"records_file": str(tmp_path / "records.jsonl"), "stop_file": str(tmp_path / "stop"),
            "stop_gap_file": str(tmp_path / "stop_gap.json"), "callbacks": ["should_stop"]}
    should_stop = child.build_callbacks(spec)["should_stop"]

    def gap():
        path = tmp_path / "stop_gap.json"
        return json.loads(path.read_text())["max_gap_s"] if path.exists() else 0.0

    return clock, should_stop, gap, tmp_path


def reset(tmp, at):
    """What ChildRun.reset_stop_gap() writes: when the check asked."""
    (tmp / "stop_gap_reset").write_text(json.dumps({"at": at}))


def calls(clock, should_stop, every, n):
    for _ in range(n):
        clock.now += every
        should_stop()


def test_the_longest_gap_is_written_and_short_ones_are_not(setup):
    clock, should_stop, gap, tmp = setup
    calls(clock, should_stop, 0.1, 20)
    assert gap() == 0.0  # 0.1 s apart: nothing worth writing down
    calls(clock, should_stop, 2.5, 2)
    calls(clock, should_stop, 0.1, 5)
    assert gap() == 2.5
    assert not should_stop()
    (tmp / "stop").touch()
    assert should_stop()


def test_a_reset_forgets_the_gaps_before_it_and_the_gap_it_ends(setup):
    clock, should_stop, gap, tmp = setup
    calls(clock, should_stop, 0.1, 3)
    clock.now += 4.0
    reset(tmp, clock.now)  # the check blocked the learner on purpose, then reset
    clock.now += 1.0
    should_stop()  # the blocked gap ends here: forgotten
    assert gap() == 0.0 and not (tmp / "stop_gap_reset").exists()
    calls(clock, should_stop, 0.1, 10)
    calls(clock, should_stop, 1.5, 1)
    assert gap() == 1.5  # the gaps after the reset count


def test_a_reset_between_short_calls_is_seen_before_any_gap_is_written(setup):
    clock, should_stop, gap, tmp = setup
    calls(clock, should_stop, 3.0, 2)
    assert gap() == 3.0
    calls(clock, should_stop, 0.01, 5)
    reset(tmp, clock.now + 0.005)
    calls(clock, should_stop, 0.01, 5)  # not looked at yet: 0.3 s have not passed since the last look
    assert (tmp / "stop_gap_reset").exists()
    calls(clock, should_stop, 0.8, 1)
    # Seen at the first gap that could be written: the 3 s before it are gone, and this gap, which began
    # after the reset, counts (as it would had the reset been seen at once).
    assert gap() == 0.8 and not (tmp / "stop_gap_reset").exists()


def test_a_busy_loop_costs_one_stat_per_call(setup, monkeypatch):
    clock, should_stop, _, _ = setup
    looked: list = []
    real = pathlib.Path.exists
    monkeypatch.setattr(pathlib.Path, "exists", lambda self: looked.append(self.name) or real(self))
    calls(clock, should_stop, 0.001, 1000)  # one second of a tight loop
    assert looked.count("stop") == 1000 and looked.count("stop_gap_reset") <= 4
