"""`grade release OUT`: write a student course — katas, public checks, a pinned grader; nothing else.

What stays behind: solutions/, known-bad mistakes, hidden checks (their functions are cut out of the
check files with `ast`, so shared helpers stay), instructor docs and the kata.yaml fields that describe
them. Every check is made before the first file is written, and the release is built in a scratch
folder beside OUT that is renamed into place only when complete: a refused or failed release leaves
nothing behind and never touches an existing OUT.
"""

from __future__ import annotations

import ast
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import click
import yaml

from grader import __version__, console, scoring, wheel
from grader.catalog import COURSE_FILE, RELEASE_FILE, Course, Kata, load_course
from grader.commands.common import course_option, open_course, refuse_in_release
from grader.errors import CourseError, UsageError

# kata.yaml fields that describe the reference solution or the instructor's proof; the rest is the learner's.
INSTRUCTOR_FIELDS = ("solution", "known_bad", "equivalent_mutants")
# Files no release should carry: caches and editor or OS litter.
SKIP_NAMES = {"__pycache__", ".pytest_cache", ".ruff_cache", ".DS_Store"}
TEMPLATES = {"README.md": "README.md.j2", "dev": "dev.j2", ".gitignore": "gitignore.j2"}


@dataclass
class Plan:
    """Everything the release will hold, computed (and checked) before anything is written."""

    katas: list[Kata]
    files: dict[Path, str | Path] = field(default_factory=dict)  # release path -> text, or a file to copy
    held_back: dict[str, int] = field(default_factory=dict)  # kata id -> hidden checks left out


@click.command("release")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--katas", "selection", metavar="KATAS",
              help="Release only these katas: a range (kata-01..kata-06) and/or a comma list (kata-01,kata-03).")
@click.option("--grader", "grader_spec", metavar="REQUIREMENT",
              help="How students install the grader (requirements.txt line), e.g. "
              "'kafka-katas @ git+https://github.com/you/kafka-katas@v1.0'. Default: this grader's wheel, "
              "bundled in the release (vendor/).")
@course_option
def release_command(out, selection, grader_spec, course_dir):
    """Write a student course to OUT: katas, public checks, a pinned grader; no solutions or hidden checks."""
    course = open_course(course_dir)
    refuse_in_release(course, "`grade release`",
                      "run `grade release OUT` in the course repository this release was made from.")
    out = out.resolve()
    _check_out(course, out)
    katas = select(course, selection)
    if grader_spec:
        requirement, bundled = _grader_requirement(grader_spec), None
    else:  # kafka-katas is not on PyPI: the release carries the grader that made it
        bundled = wheel.cached()
        requirement = f"./vendor/{bundled.name}"
    plan = make_plan(course, katas, requirement)
    if bundled:
        plan.files[Path("vendor") / bundled.name] = bundled
    _write(plan, out)
    console.out.print(f"Released {len(plan.katas)} katas to {out}: "
                      f"{', '.join(k.id for k in plan.katas)}.")
    for kata_id, count in plan.held_back.items():
        console.out.print(f"  {kata_id}: {count} hidden check{'s' if count != 1 else ''} held back")
    console.out.print(f"Next: try it as a student: `cd {out} && ./dev grade {plan.katas[0].id}`, "
                      "then publish it (e.g. `git init` there and push it as the assignment's template).")


def select(course: Course, selection: str | None) -> list[Kata]:
    """`kata-01..kata-06`, `kata-01,kata-03`, or both (`01..03,07`); course order, each kata once."""
    if not selection:
        return list(course.katas)
    order = [k.id for k in course.katas]
    chosen: set[str] = set()
    for part in (p.strip() for p in selection.split(",")):
        if not part:
            raise UsageError(f"--katas '{selection}' has an empty entry.",
                             next_step="write ids separated by single commas, e.g. --katas kata-01,kata-03.")
        if ".." in part:
            first, _, last = part.partition("..")
            a, b = order.index(course.find(first).id), order.index(course.find(last).id)
            if a > b:
                raise UsageError(f"--katas {part}: {order[a]} comes after {order[b]} in the course.",
                                 next_step=f"write the range in course order: --katas {order[b]}..{order[a]}.")
            chosen.update(order[a:b + 1])
        else:
            chosen.add(course.find(part).id)
    return [k for k in course.katas if k.id in chosen]


def make_plan(course: Course, katas: list[Kata], requirement: str) -> Plan:
    plan = Plan(katas)
    ids = {k.id for k in katas}
    by_folder: dict[str, list[Kata]] = {}
    for kata in katas:
        by_folder.setdefault(kata.checks, []).append(kata)
        plan.files.update(_kata_files(kata, ids))
    for folder, sharing in by_folder.items():
        plan.files.update(_check_files(folder, sharing, plan))
    plan.files[Path(COURSE_FILE)] = course_yaml(course, katas)
    plan.files[Path(RELEASE_FILE)] = yaml.safe_dump(
        {"format_version": 1, "grader_version": __version__, "katas": [k.id for k in katas],
         "held_back": plan.held_back}, sort_keys=False)
    plan.files[Path("requirements.txt")] = f"# The grader this course was released for.\n{requirement}\n"
    env = _templates()
    for name, template in TEMPLATES.items():
        plan.files[Path(name)] = env.get_template(template).render(course=course, katas=katas,
                                                                   requirement=requirement)
    if (course.root / "docker-compose.yml").is_file():  # a broker of their own, as README.md describes
        plan.files[Path("docker-compose.yml")] = course.root / "docker-compose.yml"
    _refuse_instructor_content(course, plan)
    return plan


def _kata_files(kata: Kata, ids: set[str]) -> dict[Path, str | Path]:
    files: dict[Path, str | Path] = {}
    for path in _tree(kata.kata_dir):
        rel = Path("katas") / kata.dir_name / path.relative_to(kata.kata_dir)
        files[rel] = _kata_yaml(kata, ids) if path == kata.yaml_path else path
    return files


def _kata_yaml(kata: Kata, ids: set[str]) -> str:
    data = yaml.safe_load(kata.yaml_path.read_text(encoding="utf-8"))
    for key in INSTRUCTOR_FIELDS:
        data.pop(key, None)
    # Only the public checks' scores (a hidden check's name is the instructor's business).
    public = {s.name: {"points": s.points} for s in kata.scoring if not s.hidden}
    data.pop("scoring", None)
    if public:
        data["scoring"] = public
    if "requires" in data:  # a kata outside this release cannot be done first
        data["requires"] = [r for r in data["requires"] if r in ids]
    return f"# {kata.id}, as released to students.\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                                                                     width=110)


def _check_files(folder: str, sharing: list[Kata], plan: Plan) -> dict[Path, str | Path]:
    checks_dir = sharing[0].checks_dir
    if not checks_dir.is_dir():
        raise CourseError(f"The checks of {sharing[0].id} are missing: {checks_dir} does not exist.",
                          next_step=f"restore them, or leave {sharing[0].id} out with --katas.")
    problems = [p for kata in sharing for p in scoring.unknown_names(kata, with_fix=False)]
    if problems:
        raise CourseError(f"Not released: {problems[0]}", detail="\n".join(problems[1:]),
                          next_step=f"{scoring.UNMATCHED_FIX} Then run `grade release` again.")
    hidden = {s.name for kata in sharing for s in kata.scoring if s.hidden}
    defined = scoring.check_functions(checks_dir)
    for kata in sharing:
        if count := len(hidden & set(defined)):
            plan.held_back[kata.id] = count
    if not set(defined) - hidden:
        raise CourseError(f"{sharing[0].id} has no public checks: every check is hidden, so a student could "
                          "not grade it.", next_step=f"make at least one check public in {sharing[0].yaml_path}, "
                          f"or leave {sharing[0].id} out with --katas.")
    files: dict[Path, str | Path] = {}
    check_files = set(scoring.check_files(checks_dir))
    for path in _tree(checks_dir):
        rel_inside = path.relative_to(checks_dir)
        if rel_inside.parts[0] == "known_bad":
            continue
        rel = Path("checks") / folder / rel_inside
        if path in check_files:
            text = strip_hidden(path, path.read_text(encoding="utf-8"), hidden)
            if text is not None:  # a file of hidden checks only is left out
                files[rel] = text
        else:
            files[rel] = path
    return files


def strip_hidden(path: Path, source: str, hidden: set[str]) -> str | None:
    """The check file without its hidden check functions (decorators and the comments around them
    included), or None when no check is left. Everything else stays byte for byte."""
    tree = scoring.parse_file(path)
    lines = source.splitlines(keepends=True)
    tests = scoring.test_functions(tree)
    drop: set[int] = set()
    for node in tests:
        if node.name in hidden:
            drop.update(_span(node, lines))
    kept = [n.name for n in tests if n.name not in hidden]
    if not kept:
        return None
    if not drop:
        return source
    text = "".join(line for number, line in enumerate(lines, start=1) if number not in drop).rstrip("\n") + "\n"
    # Prove the cut: the file still parses, holds exactly the public checks, and names no hidden one.
    new = ast.parse(text, filename=str(path))
    left = [n.name for n in scoring.test_functions(new)]
    used = sorted({n.id for n in ast.walk(new) if isinstance(n, ast.Name)} & hidden)
    if left != kept or used:
        raise CourseError(f"{path}: cannot cut the hidden checks out cleanly"
                          + (f": the code left behind uses {', '.join(used)}" if used else "") + ".",
                          next_step="move what public checks share into a helper function (not a test_ "
                          "function), then run `grade release` again.")
    return text


def _span(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> range:
    """Line numbers of a function with its decorators, the comment lines just above it at its own
    indentation (they describe it), comment lines indented inside it after its last statement, and the
    blank lines that follow (the blank lines before it keep the code around it apart)."""
    def indent(text: str) -> int:
        return len(text) - len(text.lstrip())

    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    while start > 1 and lines[start - 2].lstrip().startswith("#") and indent(lines[start - 2]) == node.col_offset:
        start -= 1
    end = index = node.end_lineno
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped and not (stripped.startswith("#") and indent(lines[index]) > node.col_offset):
            break
        index += 1
        if stripped:
            end = index
    while end < len(lines) and not lines[end].strip():
        end += 1
    return range(start, end + 1)


def course_yaml(course: Course, katas: list[Kata]) -> str:
    data = yaml.safe_load((course.root / COURSE_FILE).read_text(encoding="utf-8"))
    data["katas"] = [k.dir_name for k in katas]
    return (f"# {course.title}: the student release (`grade release`), for grader {__version__}.\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110))


def _tree(folder: Path) -> list[Path]:
    """The files under folder, caches left out. A symlink is refused: it could point at a solution."""
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in SKIP_NAMES for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_symlink():
            raise CourseError(f"{path} is a symbolic link; a release copies files, and a link could carry "
                              "a solution or a hidden check.", next_step="replace it with a copy of the file it "
                              "points to (if students need it), then run `grade release` again.")
        if path.is_file():
            files.append(path)
    return files


def _refuse_instructor_content(course: Course, plan: Plan) -> None:
    """A last guard before writing: no planned file may equal a solution or a known-bad file."""
    secret = {}
    for kata in course.katas:
        candidates = [kata.solution_path, *(kata.checks_dir / "known_bad" / b.file for b in kata.known_bad)]
        for path in candidates:
            if path.is_file():
                secret[path.read_bytes().strip()] = path
    for rel, content in plan.files.items():
        data = (content.read_bytes() if isinstance(content, Path) else content.encode()).strip()
        if data and data in secret:
            raise CourseError(f"Not released: {rel} would be a copy of {secret[data]}.",
                              next_step=f"put the learner's stub back in {course.root / rel}, then run "
                              "`grade release` again.")


def _check_out(course: Course, out: Path) -> None:
    for tree in ("katas", "checks", "solutions"):
        inside = course.root / tree
        if out == inside or inside in out.parents:
            raise UsageError(f"{out} is inside the course's {tree}/ folder; the release would copy itself.",
                             next_step="pick a folder outside the course, e.g. `grade release ../my-course-2026`.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not an empty folder; a release never overwrites files.",
                         next_step="pick a new folder, or move that one away yourself, then run "
                         "`grade release` again.")


def _grader_requirement(spec: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise UsageError(f"--grader '{spec}' is not a pip requirement ({exc}).",
                         next_step=f"use e.g. --grader 'kafka-katas=={__version__}'.") from None
    if requirement.name.replace("_", "-").lower() != "kafka-katas":
        raise UsageError(f"--grader '{spec}' installs '{requirement.name}', not the grader (kafka-katas).",
                         next_step="name kafka-katas, e.g. --grader 'kafka-katas @ git+https://HOST/REPO@TAG'.")
    return spec


def _write(plan: Plan, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.release-", dir=out.parent))
    try:
        for rel, content in plan.files.items():
            target = scratch / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_text(content, encoding="utf-8")
        (scratch / "dev").chmod(0o755)
        load_course(scratch)  # the release must load as a course; a CourseError here leaves nothing behind
        if out.exists():
            out.rmdir()  # empty (checked before): the rename needs the name free
        scratch.rename(out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _templates():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("grader", "templates/release"),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
