"""The docs keep up with the code: every command is documented, the quick start is two commands,
and CI runs the README's test command."""

import re

from conftest import ROOT

from grader.cli import cli

README = (ROOT / "README.md").read_text()


def test_every_command_appears_in_the_readme():
    missing = [name for name in cli.commands if name != "run" and f"grade {name}" not in README]
    assert not missing, f"commands not in README.md: {missing}"


def test_quick_start_is_two_commands():
    section = README.split("## Quick start", 1)[1].split("## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["./dev grade kata-01", "./dev test"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in ci


def test_authoring_guide_lists_every_kata_yaml_field():
    from grader.schema import KATA_FIELDS

    guide = (ROOT / "docs" / "authoring.md").read_text()
    missing = [f for f in KATA_FIELDS if f"`{f}`" not in guide]
    assert not missing, f"kata.yaml fields not in docs/authoring.md: {missing}"
