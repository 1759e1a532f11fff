"""The shape of the package, held: what each layer may import, no import cycles, small
modules. Each import check runs in a fresh interpreter, since this one has loaded it all."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "seqbench"
MAX_LINES = 400


def loaded_after(code: str) -> list[str]:
    """The modules loaded after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# What importing any seqbench module loads first: the package (its version and its error).
PACKAGE = {"seqbench", "seqbench.core", "seqbench.core.errors", "seqbench.core.version"}


@pytest.mark.parametrize(
    "module",
    [
        "seqbench.core.schema",
        "seqbench.judge.stats",
        "seqbench.core.timing",
        "seqbench.core.settings",
    ],
)
def test_the_core_contracts_import_nothing_from_seqbench(module):
    parent = module.rsplit(".", 1)[0]
    loaded = loaded_after(f"import {module}")
    ours = [m for m in loaded if m.split(".")[0] == "seqbench" and m not in {*PACKAGE, parent}]
    assert ours == [module]


def test_the_reading_side_never_imports_torch():
    modules = loaded_after(
        "import seqbench.storage, seqbench.judge.compare, seqbench.export, seqbench.judge.scaling\n"
        "import seqbench.output.tables, seqbench.output.scaling, seqbench.output.terminal\n"
        "import seqbench.output.plots, seqbench.core.request, seqbench.plan.config, seqbench.cli"
    )
    assert "torch" not in modules
    assert "pandas" not in modules  # storage reads and writes CSV itself


def test_the_command_line_starts_without_torch_numpy_scipy_or_pandas():
    """`seqbench --version` imports every command module: what they import at load is what
    every command pays before it starts."""
    modules = loaded_after("import seqbench.cli")
    assert [m for m in ("torch", "numpy", "scipy", "pandas") if m in modules] == []


def test_the_reading_commands_never_import_torch(tmp_path):
    """runs, show, export and compare on a saved run, each in a fresh interpreter."""
    code = f"""
from pathlib import Path
from tests.helpers import make_cell, save_run
from seqbench.core.schema import ResultRow
rows = [ResultRow.for_cell(make_cell(seq_len=t), median_s=t * 1e-5, params=1, core_params=1,
        peak_mem_bytes=t * 1000, kernel="aten") for t in (16, 32, 64)]
save_run(Path({str(tmp_path)!r}), rows, label="a")
save_run(Path({str(tmp_path)!r}), rows, label="b")
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    runs = sorted(p.name for p in tmp_path.iterdir())
    for argv in (
        ["runs", "--root", str(tmp_path)],
        ["show", runs[0], "--root", str(tmp_path)],
        ["export", runs[0], "--format", "json", "--root", str(tmp_path)],
        ["compare", runs[0], runs[1], "--root", str(tmp_path)],
    ):
        modules = loaded_after(
            "import sys\nfrom seqbench.cli import app\n"
            # Any outcome but bad input (2): one sample a cell leaves compare undecided (3).
            f"try:\n    app({argv!r})\nexcept SystemExit as exc:\n    assert exc.code != 2, exc.code"
        )
        assert "torch" not in modules, argv[0]


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = path.relative_to(src.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The seqbench modules a module imports anywhere in it (at the top, inside functions,
    under `try`), except under `if TYPE_CHECKING:`, which never runs. `from seqbench.x import
    y` counts as importing the module `seqbench.x.y` where y is one, else `seqbench.x`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for sub in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            found.update(s for s in subs if s in modules)
            if not all(s in modules for s in subs):
                found.add(node.module)
    return {m for m in found if m in modules and m != name}


def import_graph(src: Path) -> dict[str, set[str]]:
    paths = {_module_name(p, src): p for p in src.rglob("*.py")}
    return {name: imports_of(path, name, set(paths)) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                return path[path.index(other) :] + [other]
            if other not in state and (cycle := visit(other, [*path, other])):
                return cycle
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [name])):
            return cycle
    return None


def test_there_are_no_import_cycles_counting_imports_inside_functions():
    cycle = find_cycle(import_graph(SRC))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    """The check above can fail: a cycle whose second half is imported inside a function
    (the way a deferred import hides one from a top-level reading) is reported."""
    package = tmp_path / "seqbench"
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("")
    (package / "a" / "one.py").write_text("from seqbench.b import two\n")
    (package / "b.py").write_text("def f():\n    from seqbench.a import one\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from seqbench.a import one\n"
    )
    graph = import_graph(package)
    assert graph["seqbench.c"] == set()  # typing-only imports never run
    assert find_cycle(graph) == ["seqbench.a.one", "seqbench.b", "seqbench.a.one"]


def test_the_core_imports_only_the_core():
    graph = import_graph(SRC)
    outside = {
        (name, other)
        for name, others in graph.items()
        if name.startswith("seqbench.core.")
        for other in others
        if not other.startswith("seqbench.core")
    }
    assert outside == set()


def test_modules_stay_small_or_say_why_not():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > MAX_LINES and "is long because" not in doc:
            long.append(f"{path.relative_to(SRC)} ({lines} lines)")
    assert long == []
