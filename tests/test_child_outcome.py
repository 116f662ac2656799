"""grader/child.py's exit code is the outcome of the learner's function (0 returned, 1 raised), whatever happens
to the report file: a check that limits file sizes (kata-11's full disk) may leave no room for it, and must still
tell a function that raised from one that swallowed its own error. No broker."""

import json
import types

import pytest

from grader import child


@pytest.fixture
def spec(tmp_path):
    return {"records_file": str(tmp_path / "records.jsonl"), "stop_file": str(tmp_path / "stop"),
            "stop_gap_file": str(tmp_path / "stop_gap.json"), "callbacks": [], "impl": "impl.py",
            "result_file": str(tmp_path / "result.json"), "error_file": str(tmp_path / "error.json")}


def run(spec, func):
    return child.run_child({**spec, "function": "f"}, lambda path: types.SimpleNamespace(f=func), set())


def fails():
    raise ValueError("the snapshot could not be written")


def test_the_outcome_and_its_report(spec, tmp_path):
    assert run(spec, lambda: {"n": 3}) == 0
    assert json.loads((tmp_path / "result.json").read_text()) == {"result": {"n": 3}}
    assert run(spec, fails) == 1
    assert json.loads((tmp_path / "error.json").read_text())["message"] == "the snapshot could not be written"


def test_no_room_for_the_report_keeps_the_outcome(spec, tmp_path):
    """The report files cannot be written (here: their folder is gone): the exit code still says which."""
    nowhere = tmp_path / "gone" / "x.json"
    spec = {**spec, "result_file": str(nowhere), "error_file": str(nowhere)}
    assert run(spec, lambda: "x" * 100) == 0
    assert run(spec, fails) == 1
