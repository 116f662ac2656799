"""A learner's day, end to end through the CLI on a real broker:
list → grade (fail) → hint → fix → grade (pass) → progress → next → solution; plus watch."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import OK_COURSE, run_grade

pytestmark = pytest.mark.broker


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(OK_COURSE, root)
    return root


@pytest.fixture
def grade(course, tmp_path, bootstrap):
    env = {"KAFKA_KATAS_DATA": str(tmp_path / "data"), "KAFKA_BOOTSTRAP_SERVERS": bootstrap}

    def run(*args, input_text=None):
        return run_grade(*args, "--course", str(course), env=env, input_text=input_text)
    return run


def solve(course):
    shutil.copy(course / "solutions" / "kata-01-echo" / "echo.py", course / "katas" / "kata-01-echo" / "echo.py")


def test_a_learners_day(course, grade):
    listing = grade("list")
    assert "not started" in listing.stdout and "Next: `grade kata-01`." in listing.stdout

    first = grade("kata-01")
    assert first.returncode == 1
    assert "✗ The value reaches the topic." in first.stdout
    assert "What the broker showed: []" in first.stdout
    assert "Next: stuck? `grade hint kata-01`" in first.stdout
    assert "in progress" in grade("list").stdout

    hint = grade("hint", "kata-01")
    assert "Hint 1/1 (new): Call produce() and then flush()." in hint.stdout
    assert "That was the last hint" in grade("hint", "kata-01").stdout

    hidden = grade("solution", "kata-01")
    assert hidden.returncode == 2 and "stays hidden" in hidden.stderr

    solve(course)
    second = grade("kata-01", "--json")
    assert second.returncode == 0
    results = json.loads(second.stdout)
    assert results["version"] == 3 and results["status"] == "pass" and results["score"] == 1.0
    assert results["tests"][0]["name"] == "The value reaches the topic."

    progress = grade("progress", "--json")
    data = json.loads(progress.stdout)
    assert data["mastery"][0]["state"] == "mastered"
    entry = data["katas"]["kata-01"]
    assert entry["attempts"] == 2 and entry["first_pass"] and entry["hints_revealed"] == 1
    assert [h["status"] for h in entry["history"]] == ["fail", "pass"]
    assert "1 of 1 checklist items mastered." in grade("progress").stdout
    assert "Every kata is passed" in grade("next").stdout
    assert "def send" in grade("solution", "kata-01").stdout


def test_solution_runs_do_not_count_as_progress(grade):
    assert grade("kata-01", "--solution").returncode == 0
    assert json.loads(grade("progress", "--json").stdout)["katas"] == {}


def test_reset_asks_first(grade):
    grade("kata-01")
    kept = grade("progress", "--reset", input_text="n\n")
    assert "Nothing was changed." in kept.stdout
    assert json.loads(grade("progress", "--json").stdout)["katas"]
    gone = grade("progress", "--reset", "kata-01", input_text="y\n")
    assert "Forgot your progress on kata-01." in gone.stdout
    assert json.loads(grade("progress", "--json").stdout)["katas"] == {}


def test_reports_in_other_formats(grade, tmp_path):
    result = grade("kata-01", "--junit", str(tmp_path / "j.xml"), "--gradescope", str(tmp_path / "g.json"))
    assert result.returncode == 1
    assert '<failure message="The value reaches the topic."' in (tmp_path / "j.xml").read_text()
    gs = json.loads((tmp_path / "g.json").read_text())
    assert gs["score"] == 0 and gs["max_score"] == 1 and gs["tests"][0]["status"] == "failed"


def test_html_report_is_self_contained_and_escaped(grade, course, tmp_path):
    kata_yaml = course / "katas" / "kata-01-echo" / "kata.yaml"
    kata_yaml.write_text(kata_yaml.read_text().replace("title: Produce one record", "title: <script>x</script>"))
    grade("kata-01")
    out = tmp_path / "report.html"
    assert grade("progress", "--html", str(out)).returncode == 0
    html = out.read_text()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert 'id="mastery-chart"' in html and "<link" not in html and "src=" not in html


@pytest.mark.parametrize("mechanism", ["events", "poll"])
def test_watch_regrades_on_save_and_stops_on_ctrl_c(course, tmp_path, bootstrap, mechanism):
    env = {**os.environ, "NO_COLOR": "1", "KAFKA_KATAS_DATA": str(tmp_path / "data"),
           "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_KATAS_WATCH": mechanism}
    proc = subprocess.Popen([sys.executable, "-m", "grader", "watch", "kata-01", "--course", str(course)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []

    def wait_for(text, timeout=60):
        deadline = time.monotonic() + timeout
        while not any(text in line for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(proc.stdout.readline())
    try:
        wait_for("Watching katas/kata-01-echo/")
        assert any("0 of 1 checks passed" in line for line in lines)
        solve(course)
        wait_for("All 1 checks passed.")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 130


# In CI (.ci/run installs Debian's chromium and sets CI) a missing browser fails instead of skipping.
@pytest.mark.skipif(not shutil.which("chromium") and not os.environ.get("CI"),
                    reason="needs Debian's chromium (apt-get install chromium)")
def test_html_report_renders_in_headless_chromium(grade, tmp_path):
    assert shutil.which("chromium"), "chromium is not installed: .ci/run installs it with apt-get"
    grade("kata-01")
    grade("hint", "kata-01")
    out = tmp_path / "report.html"
    grade("progress", "--html", str(out))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", out.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'id="mastery-chart"' in dom and 'class="bar"' in dom and 'data-item="produce"' in dom
    # The kata's timeline (one failed attempt, then a hint) and the link to its last run's page, which renders.
    assert '<svg class="attempts" data-kata="kata-01"' in dom
    assert 'class="attempt fail"' in dom and 'class="hint"' in dom
    link = dom.split('<a class="run-page" href="')[1].split('"')[0]
    run_dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", link],
                             capture_output=True, text=True, timeout=120).stdout
    assert "What the broker showed: []" in run_dom
    png = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}",
                    "--window-size=1000,800", out.as_uri()], capture_output=True, timeout=120)
    assert png.stat().st_size > 10_000  # a page with content, not a blank capture
