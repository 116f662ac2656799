"""The course: course.yaml and every kata.yaml, loaded into frozen dataclasses.

Paths are resolved against the course root (the folder holding katas/course.yaml),
so this repository, an instructor's own course and a CI checkout all work alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grader import schema
from grader.errors import CourseError, UsageError
from grader.scoring import CheckScore
from grader.scoring import parse as parse_scoring
from grader.yamlload import LineDict, load_yaml

COURSE_FILE = Path("katas") / "course.yaml"
# Present only in a student release (`grade release`): instructor commands refuse to run there.
RELEASE_FILE = Path("katas") / "release.yaml"
DEFAULT_TIMEOUT_S = 120


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    title: str


@dataclass(frozen=True)
class KnownBad:
    file: Path
    caught_by: str
    why: str


@dataclass(frozen=True)
class Equivalent:
    """A generated mutant declared harmless, with the reason a reviewer can check."""

    id: str
    why: str


@dataclass(frozen=True)
class Kata:
    id: str
    slug: str
    title: str
    checklist: str
    dir_name: str
    root: Path
    stub: str
    solution: str
    checks: str
    concepts: tuple[str, ...] = ()
    difficulty: str = "beginner"
    requires: tuple[str, ...] = ()
    brokers: int = 1
    faults: bool = False  # needs node control and fault proxies: a dedicated local cluster
    services: tuple[str, ...] = ()  # started beside the broker (grader/services/): postgres, connect
    timeout_s: int = DEFAULT_TIMEOUT_S
    hints: tuple[str, ...] = ()
    further_reading: tuple[str, ...] = ()
    known_bad: tuple[KnownBad, ...] = ()
    equivalent_mutants: tuple[Equivalent, ...] = ()
    scoring: tuple[CheckScore, ...] = ()  # only the checks kata.yaml names; the rest: 1 point, public

    @property
    def kata_dir(self) -> Path:
        return self.root / "katas" / self.dir_name

    @property
    def stub_path(self) -> Path:
        return self.kata_dir / self.stub

    @property
    def solution_path(self) -> Path:
        return self.root / "solutions" / self.dir_name / self.solution

    @property
    def checks_dir(self) -> Path:
        return self.root / "checks" / self.checks

    @property
    def yaml_path(self) -> Path:
        return self.kata_dir / "kata.yaml"

    @property
    def needs_own_cluster(self) -> bool:
        return self.brokers > 1 or self.faults

    @property
    def number(self) -> str:
        return self.id.split("-", 1)[1]


@dataclass(frozen=True)
class Course:
    root: Path
    title: str
    checklist: tuple[ChecklistItem, ...]
    patterns: tuple[ChecklistItem, ...]
    mastery_rule: str
    katas: tuple[Kata, ...]
    release: dict | None = None  # katas/release.yaml of a student release, else None

    @property
    def is_release(self) -> bool:
        return self.release is not None

    def find(self, name: str) -> Kata:
        """Accepts `kata-01`, `01`, `1`, `keyed-partitioning` or the folder name."""
        wanted = name.strip().lower()
        for kata in self.katas:
            names = {kata.id, kata.slug, kata.dir_name, kata.number, kata.number.lstrip("0")}
            if wanted in names:
                return kata
        listing = "\n".join(f"  {k.id}  {k.slug:<28} {k.title}" for k in self.katas)
        raise UsageError(f"There is no kata called '{name}'.",
                         detail=f"Available katas:\n{listing}",
                         next_step="run `grade list`, then `grade KATA` with one of the ids above.")

    def item(self, item_id: str) -> ChecklistItem:
        return next(i for i in (*self.checklist, *self.patterns) if i.id == item_id)


def find_course_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / COURSE_FILE).is_file():
            return folder
    raise UsageError(f"No course found: neither {here} nor a folder above it holds {COURSE_FILE}.",
                     next_step="cd into your kafka-katas clone, or pass --course DIR.")


def load_course(root: Path) -> Course:
    path = root / COURSE_FILE
    data = load_yaml(path, "course")
    schema.check_fields(data, schema.COURSE_FIELDS, path)
    if data["format_version"] != 1:
        raise CourseError(f"{path}:{data.line_of('format_version')}: format_version {data['format_version']} "
                          "is not supported by this grader (it reads version 1).",
                          next_step="upgrade the grader (`pip install -U kafka-katas`) or set format_version: 1.")
    items = _items(data, path, "checklist")
    patterns = _items(data, path, "patterns") if "patterns" in data else ()
    ids = [i.id for i in (*items, *patterns)]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CourseError(f"{path}: the item id '{dupes[0]}' appears more than once in checklist/patterns.",
                          next_step="give every checklist and pattern item its own id.")
    rule = (data.get("mastery") or {}).get("rule", "all-katas")
    if rule not in schema.MASTERY_RULES:
        raise CourseError(f"{path}:{data.line_of('mastery')}: mastery rule '{rule}' is unknown.",
                          next_step=f"use one of: {', '.join(schema.MASTERY_RULES)}.")
    katas = []
    for entry in data["katas"]:
        if not isinstance(entry, str):
            raise CourseError(f"{path}:{data.line_of('katas')}: each entry of 'katas' should be a kata "
                              f"folder name such as kata-01-keyed-partitioning, found {entry!r}.",
                              next_step="list folder names under katas/, one per line.")
        katas.append(load_kata(root, entry, set(ids)))
    _check_unique(katas, path)
    release = None
    if (root / RELEASE_FILE).exists():
        release = load_yaml(root / RELEASE_FILE, "release")
        schema.check_fields(release, schema.RELEASE_FIELDS, root / RELEASE_FILE)
    return Course(root=root, title=data["title"], checklist=items, patterns=tuple(patterns), mastery_rule=rule,
                  katas=tuple(katas), release=release)


def _items(data: LineDict, path: Path, key: str) -> tuple[ChecklistItem, ...]:
    items = []
    for raw in data[key]:
        schema.check_sub_mapping(raw, schema.CHECKLIST_FIELDS, path, data.line_of(key), key,
                                 required=("id", "title"))
        if not schema.ITEM_ID.match(raw["id"]):
            raise CourseError(f"{path}:{raw.line}: {key} id '{raw['id']}' should be lower-case words "
                              "joined by '-' (e.g. manual-commit).", next_step="rename that id.")
        items.append(ChecklistItem(raw["id"], raw["title"]))
    if not items:
        raise CourseError(f"{path}:{data.line_of(key)}: '{key}' is empty.",
                          next_step=f"list the items of '{key}', or remove the field.")
    return tuple(items)


def load_kata(root: Path, dir_name: str, item_ids: set[str]) -> Kata:
    kata_dir = root / "katas" / dir_name
    path = kata_dir / "kata.yaml"
    if not kata_dir.is_dir():
        raise CourseError(f"{root / COURSE_FILE}: lists '{dir_name}', but {kata_dir} does not exist.",
                          next_step=f"create it with `grade new {dir_name.split('-', 2)[-1]} --checklist ITEM`, "
                          "or remove the entry from course.yaml.")
    data = load_yaml(path, "kata")
    schema.check_fields(data, schema.KATA_FIELDS, path)
    _check_formats(data, path, dir_name, item_ids)
    broker = data.get("broker") or {}
    schema.check_sub_mapping(broker, schema.BROKER_FIELDS, path, data.line_of("broker"), "broker")
    known_bad = []
    for raw in data.get("known_bad") or []:
        schema.check_sub_mapping(raw, schema.KNOWN_BAD_FIELDS, path, data.line_of("known_bad"), "known_bad",
                                 required=("file", "caught_by", "why"))
        known_bad.append(KnownBad(Path(raw["file"]), raw["caught_by"], raw["why"]))
    equivalents = []
    for raw in data.get("equivalent_mutants") or []:
        schema.check_sub_mapping(raw, schema.EQUIVALENT_FIELDS, path, data.line_of("equivalent_mutants"),
                                 "equivalent_mutants", required=("id", "why"))
        equivalents.append(Equivalent(raw["id"], raw["why"]))
    scores = parse_scoring(data["scoring"], path) if "scoring" in data else ()
    return Kata(
        id=data["id"], slug=data["slug"], title=data["title"], checklist=data["checklist"],
        dir_name=dir_name, root=root, stub=data["stub"], solution=data.get("solution", data["stub"]),
        checks=data.get("checks", dir_name), concepts=tuple(data.get("concepts") or ()),
        difficulty=data.get("difficulty", "beginner"), requires=tuple(data.get("requires") or ()),
        brokers=broker.get("brokers", 1), faults=broker.get("faults", False),
        services=tuple(data.get("services") or ()), timeout_s=data.get("timeout_s", DEFAULT_TIMEOUT_S),
        hints=tuple(data["hints"]), further_reading=tuple(str(x) for x in data.get("further_reading") or ()),
        known_bad=tuple(known_bad), equivalent_mutants=tuple(equivalents), scoring=scores,
    )


def _check_formats(data: LineDict, path: Path, dir_name: str, item_ids: set[str]) -> None:
    def fail(key: str, problem: str, fix: str) -> None:
        raise CourseError(f"{path}:{data.line_of(key)}: {problem}", next_step=fix)

    if not schema.KATA_ID.match(data["id"]):
        fail("id", f"id '{data['id']}' should look like kata-05.", "use 'kata-' and two or three digits.")
    if not schema.SLUG.match(data["slug"]):
        fail("slug", f"slug '{data['slug']}' should be kebab-case.", "use lower-case words joined by '-'.")
    if dir_name != f"{data['id']}-{data['slug']}":
        fail("id", f"the folder is '{dir_name}' but id and slug make '{data['id']}-{data['slug']}'.",
             "rename the folder (and its solutions/ and checks/ twins) or fix id/slug.")
    if data["checklist"] not in item_ids:
        fail("checklist", f"checklist item '{data['checklist']}' is not in katas/course.yaml.",
             f"use one of: {', '.join(sorted(item_ids))}.")
    if data.get("difficulty", "beginner") not in schema.DIFFICULTIES:
        fail("difficulty", f"difficulty '{data['difficulty']}' is unknown.",
             f"use one of: {', '.join(schema.DIFFICULTIES)}.")
    if not 5 <= data.get("timeout_s", DEFAULT_TIMEOUT_S) <= 900:
        fail("timeout_s", f"timeout_s {data['timeout_s']} is outside 5..900.", "pick a value in that range.")
    if not data["hints"] or not all(isinstance(h, str) and h.strip() for h in data["hints"]):
        fail("hints", "hints must be a non-empty list of non-empty texts.",
             "add at least one hint, gentlest first; learners reveal them with `grade hint`.")
    brokers = (data.get("broker") or {}).get("brokers", 1)
    if brokers not in (1, 3):
        fail("broker", f"broker.brokers is {brokers!r}; the grader runs 1 or 3 brokers.", "use 1 or 3.")
    unknown = [s for s in data.get("services") or () if s not in schema.SERVICES]
    if unknown:
        fail("services", f"services names {unknown[0]!r}, which the grader cannot start.",
             f"use a list of: {', '.join(schema.SERVICES)} (e.g. `services: [postgres, connect]`).")
    for key in ("stub", "solution"):
        name = data.get(key)
        if name and (Path(name).is_absolute() or ".." in Path(name).parts):
            fail(key, f"'{key}' must be a file name inside the kata folder, found {name!r}.",
                 "give a plain relative file name such as consumer.py.")


def _check_unique(katas: list[Kata], path: Path) -> None:
    seen: dict[str, str] = {}
    for kata in katas:
        for key in (kata.id, kata.slug):
            if key in seen and seen[key] != kata.dir_name:
                raise CourseError(f"{path}: '{key}' is used by both {seen[key]} and {kata.dir_name}.",
                                  next_step="give each kata its own id and slug.")
            seen[key] = kata.dir_name
