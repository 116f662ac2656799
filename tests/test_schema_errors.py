"""Malformed course files: each gets one clear error (file, line, field, fix), exit 2,
and never a traceback. Variants are mutations of the fixture course."""

import shutil

import pytest
from conftest import OK_COURSE, run_grade

KATA_YAML = (OK_COURSE / "katas" / "kata-01-echo" / "kata.yaml").read_text()
COURSE_YAML = (OK_COURSE / "katas" / "course.yaml").read_text()


def replace(old, new):
    def mutate(text):
        assert old in text, f"mutation anchor {old!r} not found"
        return text.replace(old, new, 1)
    return mutate


def append(extra):
    return lambda text: text + extra


# (id, mutation of kata.yaml, phrase the error must contain, line the error must name or None)
KATA_VARIANTS = [
    ("unclosed-bracket", replace("hints:\n", "hints: [\n"), "is not valid YAML", None),
    ("tab-indent", replace("  - Call", "\t- Call"), "is not valid YAML", None),
    ("empty-file", lambda t: "", "must be a YAML mapping", 1),
    ("top-level-list", lambda t: "- id: kata-01\n", "must be a YAML mapping", 1),
    ("typo-hint", replace("hints:", "hint:"), "unknown field 'hint'", 7),
    ("unknown-key", append("colour: blue\n"), "unknown field 'colour'", None),
    ("missing-id", replace("id: kata-01\n", ""), "required field 'id' is missing", None),
    ("missing-title", replace("title: Produce one record\n", ""), "required field 'title' is missing", None),
    ("missing-stub", replace("stub: echo.py\n", ""), "required field 'stub' is missing", None),
    ("missing-hints", lambda t: t.split("hints:")[0] + t[t.index("known_bad:"):],
     "required field 'hints' is missing", None),
    ("empty-hints", replace("hints:\n  - Call produce() and then flush().\n", "hints: []\n"),
     "hints must be a non-empty list", 7),
    ("blank-hint", replace("  - Call produce() and then flush().", "  - ''"), "non-empty texts", 7),
    ("hints-string", replace("hints:\n  - Call produce() and then flush().\n", "hints: call flush\n"),
     "'hints' should be a non-empty list", 7),
    ("bad-id", replace("id: kata-01", "id: kata1"), "id 'kata1' should look like kata-05", 1),
    ("bad-slug", replace("slug: echo", "slug: Echo_Kata"), "should be kebab-case", 2),
    ("folder-mismatch", replace("slug: echo", "slug: echo-two"), "the folder is 'kata-01-echo'", 1),
    ("unknown-item", replace("checklist: produce", "checklist: consume"),
     "checklist item 'consume' is not in katas/course.yaml", 4),
    ("bad-difficulty", append("difficulty: hard\n"), "difficulty 'hard' is unknown", None),
    ("timeout-string", replace("timeout_s: 20", "timeout_s: 20s"), "'timeout_s' should be whole seconds", 6),
    ("timeout-bool", replace("timeout_s: 20", "timeout_s: yes"), "'timeout_s' should be whole seconds", 6),
    ("timeout-range", replace("timeout_s: 20", "timeout_s: 1"), "timeout_s 1 is outside 5..900", 6),
    ("three-plus-brokers", append("broker:\n  brokers: 2\n"), "the grader runs 1 or 3 brokers", None),
    ("broker-unknown-field", append("broker:\n  nodes: 3\n"), "unknown field 'nodes' in 'broker'", None),
    ("broker-string", append("broker: big\n"), "'broker' should be a mapping", None),
    ("known-bad-no-check", replace("    caught_by: test_value_arrives\n", ""), "lacks 'caught_by'", None),
    ("known-bad-unknown", replace("    why: sends", "    reason: sends"),
     "unknown field 'reason' in 'known_bad'", None),
    ("known-bad-string", replace("  - file: wrong_value.py\n    caught_by: test_value_arrives\n"
                                 "    why: sends a different value\n", "  - wrong_value.py\n"),
     "each entry of 'known_bad' should be a mapping", None),
    ("stub-escapes", replace("stub: echo.py", "stub: ../../etc/passwd"), "must be a file name inside", 5),
    ("duplicate-key", append("title: Again\n"), "appears twice", None),
    ("concepts-string", append("concepts: kafka\n"), "'concepts' should be a list of concept tags", None),
    ("empty-title", replace("title: Produce one record", "title: ''"), "'title' is empty", 3),
    ("null-title", replace("title: Produce one record", "title:"), "found nothing (null)", 3),
    ("services-unknown", append("services: [mysql]\n"), "services names 'mysql', which the grader cannot start",
     None),
    ("services-string", append("services: postgres\n"), "'services' should be a list of services", None),
    ("requires-string", append("requires: kata-00\n"), "'requires' should be a list of kata ids", None),
    # kata.yaml `scoring:` (points and visibility per check); appended, so `scoring:` is line 13, its entry 14.
    ("scoring-list", append("scoring:\n  - test_value_arrives\n"),
     "'scoring' should be a mapping of check function name to {points, visibility}", 13),
    ("scoring-entry-null", append("scoring:\n  test_value_arrives:\n"),
     "each entry of 'scoring.test_value_arrives' should be a mapping", 14),
    ("scoring-points-string", append("scoring:\n  test_value_arrives: {points: two}\n"),
     "'scoring.test_value_arrives.points' should be int, found str 'two'", 14),
    ("scoring-points-bool", append("scoring:\n  test_value_arrives: {points: yes}\n"),
     "'scoring.test_value_arrives.points' should be int", 14),
    ("scoring-points-negative", append("scoring:\n  test_value_arrives: {points: -1}\n"),
     "scoring.test_value_arrives.points is -1; points are 0 to 1000", 14),
    ("scoring-visibility", append("scoring:\n  test_value_arrives: {visibility: secret}\n"),
     "scoring.test_value_arrives.visibility 'secret' is unknown", 14),
    ("scoring-unknown-field", append("scoring:\n  test_value_arrives: {weight: 2}\n"),
     "unknown field 'weight' in 'scoring.test_value_arrives'", 14),
    ("scoring-not-a-test-name", append("scoring:\n  value_arrives: {points: 2}\n"),
     "'scoring' names a check by its test function name, found 'value_arrives'", 14),
]

COURSE_VARIANTS = [
    ("course-version", replace("format_version: 1", "format_version: 2"), "format_version 2 is not supported", 1),
    ("course-no-checklist", replace("checklist:\n  - id: produce\n    title: Produce a record\n", "checklist: []\n"),
     "'checklist' is empty", 3),
    ("course-missing-kata", append("  - kata-02-ghost\n"), "lists 'kata-02-ghost', but", None),
    ("course-dup-item", replace("    title: Produce a record\n",
                                "    title: Produce a record\n  - id: produce\n    title: Again\n"),
     "the item id 'produce' appears more than once", None),
    ("course-kata-not-string", replace("  - kata-01-echo", "  - {name: kata-01-echo}"),
     "each entry of 'katas' should be a kata folder name", None),
    ("course-unknown-rule", append("mastery:\n  rule: most-katas\n"), "mastery rule 'most-katas' is unknown", None),
    ("course-unknown-key", append("colour: blue\n"), "unknown field 'colour'", None),
]


def make_course(tmp_path, kata_yaml=KATA_YAML, course_yaml=COURSE_YAML):
    root = tmp_path / "course"
    shutil.copytree(OK_COURSE, root)
    (root / "katas" / "kata-01-echo" / "kata.yaml").write_text(kata_yaml)
    (root / "katas" / "course.yaml").write_text(course_yaml)
    return root


def assert_clear_error(result, path_part, phrase, line):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert phrase in result.stderr, result.stderr
    first = result.stderr.splitlines()[0]
    assert path_part in first, first
    if line is not None:
        assert f"{path_part}:{line}:" in first, first
    assert "Next: " in result.stderr, result.stderr


@pytest.mark.parametrize("name,mutate,phrase,line", KATA_VARIANTS, ids=[v[0] for v in KATA_VARIANTS])
def test_malformed_kata_yaml(tmp_path, name, mutate, phrase, line):
    root = make_course(tmp_path, kata_yaml=mutate(KATA_YAML))
    result = run_grade("list", "--course", str(root))
    assert_clear_error(result, "kata-01-echo/kata.yaml", phrase, line)


@pytest.mark.parametrize("name,mutate,phrase,line", COURSE_VARIANTS, ids=[v[0] for v in COURSE_VARIANTS])
def test_malformed_course_yaml(tmp_path, name, mutate, phrase, line):
    root = make_course(tmp_path, course_yaml=mutate(COURSE_YAML))
    result = run_grade("list", "--course", str(root))
    assert_clear_error(result, "course.yaml", phrase, line)


def test_missing_kata_yaml(tmp_path):
    root = make_course(tmp_path)
    (root / "katas" / "kata-01-echo" / "kata.yaml").unlink()
    result = run_grade("kata-01", "--course", str(root))
    assert_clear_error(result, "kata-01-echo/kata.yaml", "the kata file is missing", None)


def test_unreadable_bytes(tmp_path):
    root = make_course(tmp_path)
    (root / "katas" / "kata-01-echo" / "kata.yaml").write_bytes(b"id: \xff\xfe\n")
    result = run_grade("list", "--course", str(root))
    assert_clear_error(result, "kata-01-echo/kata.yaml", "cannot read the kata file", None)


def test_the_fixture_course_itself_is_valid(tmp_path):
    result = run_grade("list", "--course", str(make_course(tmp_path)))
    assert result.returncode == 0, result.stderr
