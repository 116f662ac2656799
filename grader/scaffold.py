"""`grade new`: a new kata from jinja2 templates, complete enough to validate at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from grader.catalog import COURSE_FILE, Course
from grader.errors import UsageError
from grader.schema import SLUG


@dataclass(frozen=True)
class Plan:
    kata_id: str
    folder: str
    files: dict[Path, str]


def plan(course: Course, slug: str, checklist: str, title: str | None, kata_id: str | None) -> Plan:
    if not SLUG.match(slug):
        raise UsageError(f"'{slug}' is not a kebab-case slug.", next_step="use lower-case words joined by '-', "
                         "e.g. `grade new dead-letter --checklist manual-commit`.")
    items = [i.id for i in (*course.checklist, *course.patterns)]
    if checklist not in items:
        raise UsageError(f"'{checklist}' is not a checklist or pattern item of this course.",
                         next_step=f"use one of: {', '.join(items)}.")
    if kata_id is None:
        numbers = [int(k.number) for k in course.katas] + [_folder_number(p) for p in (course.root / "katas").iterdir()]
        kata_id = f"kata-{max([0, *numbers]) + 1:02d}"
    elif not re.fullmatch(r"kata-\d{2,3}", kata_id):
        raise UsageError(f"'{kata_id}' is not a kata id.", next_step="use kata-NN, e.g. --id kata-42.")
    for k in course.katas:
        if k.slug == slug:
            raise UsageError(f"The slug '{slug}' is already used by {k.id}.", next_step="pick another slug.")
        if k.id == kata_id:
            raise UsageError(f"{kata_id} is already used by {k.dir_name}.", next_step="pick another --id.")
    folder = f"{kata_id}-{slug}"
    module = slug.replace("-", "_")
    context = {"kata_id": kata_id, "slug": slug, "title": title or slug.replace("-", " ").capitalize(),
               "checklist": checklist, "module": module}
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader", "templates/new"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    root = course.root
    targets = {
        root / "katas" / folder / "kata.yaml": "kata.yaml.j2",
        root / "katas" / folder / "README.md": "README.md.j2",
        root / "katas" / folder / f"{module}.py": "stub.py.j2",
        root / "solutions" / folder / f"{module}.py": "solution.py.j2",
        root / "checks" / folder / f"test_{module}.py": "checks.py.j2",
    }
    files = {path: env.get_template(t).render(**context) for path, t in targets.items()}
    # A known-bad mistake is a patch against the solution: the author sees only the mistake.
    solution = root / "solutions" / folder / f"{module}.py"
    mistaken = env.get_template("known_bad.py.j2").render(**context)
    files[root / "checks" / folder / "known_bad" / "no_flush.patch"] = _diff(files[solution], mistaken, solution.name)
    return Plan(kata_id, folder, files)


def _diff(original: str, mistaken: str, name: str) -> str:
    import difflib

    return "".join(difflib.unified_diff(original.splitlines(keepends=True), mistaken.splitlines(keepends=True),
                                        f"a/{name}", f"b/{name}"))


def _folder_number(path: Path) -> int:
    match = re.match(r"kata-(\d+)-", path.name)
    return int(match.group(1)) if match else 0


def write(course: Course, p: Plan) -> list[str]:
    """Write the files (refusing to overwrite anything) and register the kata in course.yaml."""
    existing = [str(path) for path in p.files if path.exists()]
    folders = [course.root / tree / p.folder for tree in ("katas", "solutions", "checks")]
    existing += [str(f) for f in folders if f.exists()]
    if existing:
        raise UsageError(f"Refusing to overwrite: {existing[0]} already exists.",
                         next_step="choose another slug, or move the existing files away first.")
    for path, text in p.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return _register(course.root / COURSE_FILE, p.folder)


def _register(course_file: Path, folder: str) -> list[str]:
    lines = course_file.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "katas:"), None)
    if start is None:
        return [f"add `  - {folder}` to the katas: list of {course_file}"]
    end = start + 1
    while end < len(lines) and (lines[end].startswith("  - ") or not lines[end].strip()
                                or lines[end].lstrip().startswith("#")):
        end += 1
    last = max(i for i in range(start, end) if i == start or lines[i].startswith("  - "))
    if lines[last] and not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, f"  - {folder}\n")
    course_file.write_text("".join(lines), encoding="utf-8")
    return []
