"""Pictures beside a failure (grader/kit/pictures.py): plain data over the verdict pipe, drawn in the
terminal (<= 100 columns, no colour needed, ASCII when the terminal cannot draw) and on the run page."""

import io
import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import OK_COURSE, ROOT, run_grade
from rich.console import Console

from grader import html_report, picture_text, run_page
from grader.catalog import load_course
from grader.kit import pictures
from grader.kit.commitoffsets import commit_picture
from grader.progress import mastery
from grader.results import CheckResult, KataResult
from grader.runner import _checks_from

# A kata-04 failure: p0 killed at offset 3 with nothing committed, p2 given offset 5 twice.
BARS = commit_picture("Committed offsets right after the kill", {0: 10, 1: 0, 2: 9}, {2: 4},
                      [(0, 0), (0, 1), (0, 2), (0, 3), (2, 4), (2, 5), (2, 5), (2, 6)], crash=(0, 3),
                      got={0: None, 1: None, 2: 7}, want={0: 3, 1: None, 2: 7})


def drawn(picture, ascii_only=False) -> list[str]:
    """The picture's lines as a terminal without colour shows them (the report indents them by 4: <= 96)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, no_color=True, soft_wrap=True, color_system=None)
    for line in picture_text.render(picture, ascii_only):
        console.print(line)
    return buffer.getvalue().splitlines()


def test_offset_bars_show_the_crash_the_repeat_and_the_commit_gap_without_colour():
    lines = drawn(BARS)
    assert all(len(line) <= 96 for line in lines)
    p0 = next(line for line in lines if line.lstrip().startswith("p0"))
    assert "███X░░░░░░" in p0 and "C none  E 3   <- differs" in p0
    p2 = next(line for line in lines if line.lstrip().startswith("p2"))
    assert "····█2█░░" in p2 and p2.endswith("C 7  E 7   ok")  # the digit: offset 5 processed twice
    under_p0 = lines[lines.index(p0) + 1]
    assert under_p0.index("E") == p0.index("X")  # E points at the killed record: it is the next to read
    assert "(empty)" in next(line for line in lines if line.lstrip().startswith("p1"))


def test_ascii_fallback_draws_the_same_picture_in_ascii():
    lines = drawn(BARS, ascii_only=True)
    assert all(line.isascii() and len(line) <= 96 for line in lines)
    assert any("###X------" in line for line in lines) and any("....#2#--" in line for line in lines)


def test_a_long_partition_is_drawn_as_a_window_that_says_what_it_leaves_out():
    picture = pictures.offset_bars("busy", [pictures.bar(0, 10000, committed=None, expected=580,
                                                         processed=range(580))])
    line = next(line for line in drawn(picture) if line.lstrip().startswith("p0"))
    assert len(line) <= 96 and "…|" in line and "|…end 10000" in line and "C none  E 580" in line


@pytest.mark.parametrize("committed, expected", [(5, 9000), (None, 580), (9000, 5), (0, 0)])
def test_a_bar_never_holds_more_than_its_window_however_far_apart_the_offsets(committed, expected):
    part = pictures.bar(0, 10000, committed=committed, expected=expected, processed=range(9001))
    assert part["end"] - part["log_start"] <= 40 and part["last"] == 10000
    pictures.validate(pictures.offset_bars("far apart", [part]))


def test_a_focus_keeps_an_offset_nothing_marks_inside_the_window():
    part = pictures.bar(0, 200, processed=[*range(200), 5], focus=5)  # offset 5 processed twice, far from the end
    assert part["log_start"] <= 5 < part["end"] and part["counts"]["5"] == 2 and part["last"] == 200
    assert pictures.bar(0, 200, processed=[*range(200), 5])["log_start"] > 5  # without it: the end


def test_lanes_timelines_and_tables_fit_in_100_columns_and_name_their_marks():
    shown = [pictures.lanes("keys", {0: [pictures.lane_record(o, f"order-{o}", "duplicate" if o == 3 else "")
                                         for o in range(40)]}),
             pictures.timeline("steps", [pictures.event("check", "start member a"),
                                         pictures.event("broker", "assigned p0, p1 to a"),
                                         pictures.event("check", "SIGKILL a", "crash")]),
             pictures.table("expected vs seen", ["partition", "expected", "seen"], [[0, 3, 3], [1, 5, "none"]], [1])]
    text = "\n".join(line for p in shown for line in drawn(p))
    assert all(len(line) <= 96 for line in text.splitlines())
    wide = drawn(pictures.table("wide", ["a", "b"], [["x" * 30, "y" * 90]]))
    assert max(len(line) for line in wide) <= 96 and "x" * 30 in wide[3]  # the widest column gives way
    assert "3:order-3(x2)" in text and "▶ check  | SIGKILL a  [crash]" in text and "x 1" in text


def test_a_long_timeline_step_wraps_under_its_text_instead_of_being_cut():
    text = "group offsets meanwhile: p0 none, p1 none, p2 none " * 2 + "(should be p0 4, p1 3, p2 3) END"
    lines = drawn(pictures.timeline("t", [pictures.event("broker", text[:120], "extra")]))
    assert all(len(line) <= 96 for line in lines) and len(lines) >= 3
    assert lines[1].startswith("   1   broker | group offsets") and lines[-1].endswith("[extra]")
    assert all(line.index("|") == lines[1].index("|") for line in lines[1:])  # continued under the same bar
    assert " ".join(line.split("| ", 1)[1] for line in lines[1:]).startswith(text[:100])


@pytest.mark.parametrize("bad", [
    {"kind": "script", "title": "x"},
    {"kind": "table", "title": "x", "columns": ["a"], "rows": [[{"__class__": "os.system"}]]},
    {"kind": "offsets", "title": "x", "partitions": [{"partition": 0, "log_start": 0, "end": 10**6,
                                                      "counts": {}}]},
    {"kind": "timeline", "title": "x", "events": [{"who": "learner", "text": "hi", "mark": ""}]},
    {"kind": "lanes", "title": "x" * 500, "partitions": []},
])
def test_only_plain_pictures_of_a_known_kind_are_accepted(bad):
    with pytest.raises(pictures.PictureError):
        pictures.validate(bad)
    # attach() never raises (a picture must not replace the check's own failure): it drops the bad one.
    with pytest.warns(UserWarning, match="picture dropped"):
        pictures.attach(bad)
    assert pictures.take() == []
    # The runner checks them again: a bad picture is dropped, the verdict and its text stay.
    event = {"event": "result", "nodeid": "t::c", "name": "c", "when": "call", "outcome": "failed",
             "message": "What the check did: …", "pictures": [bad, BARS]}
    [check] = _checks_from([json.loads(json.dumps(event))])
    assert check.message == "What the check did: …" and check.pictures == [BARS]


def test_builders_shorten_long_titles_instead_of_failing():
    picture = pictures.offset_bars("t" * 300, [pictures.bar(0, 3)])
    assert len(picture["title"]) == 120 and picture["title"].endswith("…")


def test_pictures_attached_by_a_check_are_taken_once():
    pictures.attach(BARS)
    assert pictures.take() == [BARS] and pictures.take() == []


def test_the_run_page_draws_one_svg_group_per_partition_and_escapes_what_it_shows():
    kata = load_course(ROOT).find("kata-04")
    title = {**BARS, "title": "<script>alert(1)</script>"}
    result = KataResult("kata-04", kata.slug, kata.title, kata.checklist, "stub", "fail",
                        [CheckResult("test_x", "fail", message="What the check did: <b>", pictures=[title])])
    page = run_page.render(result, kata)
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;" in page
    assert len(re.findall(r'<g class="partition[^"]*" data-partition="\d+"', page)) == 3
    assert 'class="cell cell-crash" data-offset="3"' in page and 'class="cell cell-repeat" data-offset="5"' in page


def test_the_run_page_draws_each_timeline_step_whole_and_marks_the_marked_ones():
    kata = load_course(ROOT).find("kata-08")
    long = "committed when B took over (B starts there): " + ", ".join(f"p{p} {100 + p}" for p in range(8)) + " <END>"
    steps = pictures.timeline("t", [pictures.event("check", "SIGKILL A, still inside that process() call", "crash"),
                                    pictures.event("broker", long[:120])])
    result = KataResult("kata-08", kata.slug, kata.title, kata.checklist, "stub", "fail",
                        [CheckResult("test_x", "fail", message="m", pictures=[steps])])
    page = run_page.render(result, kata)
    svg = page[page.index('<svg class="timeline"'):]
    svg = svg[:svg.index("</svg>")]
    assert re.search(r'<g class="event check marked" data-step="1">.*class="cell-crash"', svg, re.S)
    shown = " ".join(re.findall(r"<tspan[^>]*>([^<]*)</tspan>", svg))
    assert "SIGKILL A, still inside that process() call (crash)" in shown
    assert long[:120].replace("<", "&lt;").replace(">", "&gt;") in shown  # wrapped onto tspans, never cut


def test_the_progress_page_wraps_labels_and_draws_each_katas_attempts_and_hints(tmp_path):
    course = load_course(OK_COURSE)
    kata = course.katas[0]
    data = {"katas": {kata.id: {"attempts": 2, "last_status": "pass", "first_pass": "2026-01-01T10:05:00",
                                "hints_revealed": 1, "history": [
                                    {"at": "2026-01-01T10:00:00", "status": "fail", "passed": 0, "total": 1},
                                    {"at": "2026-01-01T10:05:00", "status": "pass", "passed": 1, "total": 1}],
                                "hint_log": [{"at": "2026-01-01T10:02:00", "n": 1}]}}}
    rows = [{**row, "title": "A checklist item whose title is far longer than any bar label used to be allowed "
             "to be, ending in WORD-AT-THE-END"} for row in mastery(course, data)]
    page_file = tmp_path / "kata-01.html"
    page = html_report.render(course, data, rows, {kata.id: page_file})
    assert "WORD-AT-THE-END" in page  # wrapped onto a second line, not cut off
    assert re.search(r'circle class="attempt fail".*path class="hint".*circle class="attempt pass"', page, re.S)
    assert f'<a class="run-page" href="{page_file.resolve().as_uri()}">{kata.id}</a>' in page


# A check of the fixture course that draws a timeline under its failure (a copy: the fixture stays as it is).
TIMELINE_CHECK = """
from grader.kit import explain, pictures


def test_value_arrives(kafka, impl):
    \"\"\"The value reaches the topic.\"\"\"
    topic = kafka.create_topic()
    impl.send(kafka.bootstrap_servers, topic, "hello")
    values = [r.value for r in kafka.read_all(topic, timeout=3)]
    pictures.attach(pictures.timeline("what happened", [pictures.event("check", "called send('hello')"),
                                                        pictures.event("broker", f"the topic held {len(values)}",
                                                                       "missing")]))
    explain(did="called send(..., 'hello')", saw=f"{values}", expected="[b'hello']")
"""


@pytest.mark.broker
def test_ascii_forces_the_ascii_drawing_on_a_terminal_that_could_draw_blocks(tmp_path, bootstrap):
    course = tmp_path / "course"
    shutil.copytree(OK_COURSE, course)
    (course / "checks" / "kata-01-echo" / "test_echo.py").write_text(TIMELINE_CHECK)
    env = {"KAFKA_KATAS_DATA": str(tmp_path / "data"), "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "PYTHONIOENCODING": "utf-8"}
    drawn = {}
    for flags in ((), ("--ascii",)):
        proc = run_grade("kata-01", "--course", str(course), "--file", str(course / "katas/kata-01-echo/echo.py"),
                         *flags, env=env)
        assert proc.returncode == 1, proc.stderr
        drawn[flags] = [line for line in proc.stdout.splitlines() if "| called send" in line]
    assert drawn[()] and "▶ check" in drawn[()][0]  # UTF-8 out: the terminal's own drawing
    assert drawn[("--ascii",)] and "> check" in drawn[("--ascii",)][0] and drawn[("--ascii",)][0].isascii()


# ---------------------------------------------------------------------- the real thing: kata-04's stub


@pytest.fixture(scope="module")
def kata04_stub_run(tmp_path_factory, bootstrap):
    """One run of `grade kata-04` on the untouched stub (through the CLI, against the real broker)."""
    tmp = tmp_path_factory.mktemp("kata04")
    page = tmp / "run.html"
    proc = run_grade("kata-04", "--html", str(page),
                     env={"KAFKA_KATAS_DATA": str(tmp / "data"), "KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    return proc, page


@pytest.mark.broker
def test_grade_kata_04_on_the_stub_draws_offset_bars_under_the_text(kata04_stub_run):
    proc, page = kata04_stub_run
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "What the broker showed: with every record processed, committed offsets" in out  # the text stays
    assert "Committed offsets with every record processed" in out
    assert re.search(r"p3 +0 \|█+\| end 7 +C none  E 7   <- differs", out)  # processed, never committed
    # The kill of the first run: which partition it hits depends on the fetch order, so any one of them.
    assert re.search(r"p\d +0 \|[·█]*█X░*\| end \d+ +C none  E \d+   <- differs", out), out
    html = page.read_text(encoding="utf-8")
    assert html.count('<svg class="offset-bars"') >= 3 and 'data-partition="3"' in html


CHROMIUM = shutil.which("chromium")
# In CI (.ci/run installs Debian's chromium) a missing browser is a failure, not a skip.
needs_chromium = pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"),
                                    reason="needs Debian's chromium (apt-get install chromium)")


@pytest.mark.broker
@needs_chromium
def test_the_failing_kata_04_run_page_renders_in_headless_chromium(kata04_stub_run, tmp_path):
    assert CHROMIUM, "chromium is not installed: .ci/run installs it with apt-get"
    _, page = kata04_stub_run
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    first = dom[dom.index('<svg class="offset-bars"'):]
    first = first[:first.index("</svg>")]
    for partition in range(4):  # the clean run's topic has four partitions, each drawn
        assert f'data-partition="{partition}"' in first
    assert 'class="cell cell-crash"' in dom and 'class="committed"' in dom
    png = tmp_path / "kata-04-run.png"
    subprocess.run([*browser, f"--screenshot={png}", "--window-size=1100,1400", page.as_uri()],
                   capture_output=True, timeout=120)
    assert png.stat().st_size > 20_000
    if os.environ.get("KATAS_DOCS_PNG"):  # how docs/pictures-kata-04.png (the README's picture) is made
        shutil.copy(png, ROOT / "docs" / "pictures-kata-04.png")
