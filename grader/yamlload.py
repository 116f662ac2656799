"""yaml.safe_load that remembers line numbers, so course errors can point at a line."""

from __future__ import annotations

from pathlib import Path

import yaml

from grader.errors import CourseError


class LineDict(dict):
    """A mapping from YAML that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


# libyaml's C parser when present (several times faster: every `grade` run reads every
# kata.yaml); the safe constructor either way, so YAML can never build arbitrary objects.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """A safe loader + line numbers + duplicate-key errors."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path, what: str) -> LineDict:
    """Load a YAML mapping, turning every failure into a CourseError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CourseError(f"{path}: the {what} file is missing.",
                          next_step=f"create {path.name} (see docs/authoring.md), or check --course.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(f"{path}: cannot read the {what} file ({exc}).",
                          next_step="save the file as UTF-8 text.") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise CourseError(f"{where}: this is not valid YAML: {problem}.",
                          next_step="fix the YAML syntax at that line (indentation, a missing ':' or quote), "
                          "then run `grade validate`.") from None
    except yaml.YAMLError as exc:
        raise CourseError(f"{path}: this is not valid YAML: {exc}.",
                          next_step="fix the YAML syntax, then run `grade validate`.") from None
    if not isinstance(data, LineDict):
        raise CourseError(f"{path}:1: the {what} file must be a YAML mapping (key: value lines), "
                          f"found {type(data).__name__ if data is not None else 'an empty file'}.",
                          next_step="start from the example in docs/authoring.md.")
    return data
