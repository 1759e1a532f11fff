"""The repository keeps its promises: CI runs the README's test command, suites parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqbench.plan.cells import plan
from seqbench.plan.suites import resolve_config

ROOT = Path(__file__).resolve().parents[1]


def readme_setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Set-up.*?```bash\n(.*?)```", text, re.S)
    assert block, "README has no set-up block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_sets_up_in_two_commands():
    install, test = readme_setup_commands()
    assert "seqbench run" in install and "torch==2.13.0" in install
    assert "pytest" in test


def test_ci_runs_exactly_the_readme_test_command():
    _, test = readme_setup_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci_lines
    assert any("torch==2.13.0" in line for line in ci_lines)


@pytest.mark.parametrize("suite", sorted(p.name for p in (ROOT / "benchmarks").glob("*.toml")))
def test_every_shipped_suite_parses_and_plans(suite):
    assert plan(resolve_config(ROOT / "benchmarks" / suite))


def test_the_wheel_carries_every_suite():
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for suite in (ROOT / "benchmarks").glob("*.toml"):
        assert included.get(f"benchmarks/{suite.name}") == f"seqbench/suites/{suite.name}"
