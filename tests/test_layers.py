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


@pytest.mark.parametrize(
    "module", ["seqbench.schema", "seqbench.stats", "seqbench.timing", "seqbench.settings"]
)
def test_the_core_contracts_import_nothing_from_seqbench(module):
    ours = [m for m in loaded_after(f"import {module}") if m.split(".")[0] == "seqbench"]
    assert ours == ["seqbench", module]  # the package itself only reads its version


def test_the_reading_side_never_imports_torch():
    modules = loaded_after(
        "import seqbench.storage, seqbench.compare, seqbench.export, seqbench.scaling\n"
        "import seqbench.output.tables, seqbench.output.growth, seqbench.output.terminal\n"
        "import seqbench.output.plots, seqbench.request, seqbench.config, seqbench.cli"
    )
    assert "torch" not in modules
    assert "pandas" not in modules  # storage reads and writes CSV itself


def test_the_reading_commands_never_import_torch(tmp_path):
    """runs, show, export and compare on a saved run, each in a fresh interpreter."""
    code = f"""
from pathlib import Path
from tests.helpers import make_cell, save_run
from seqbench.schema import ResultRow
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """seqbench modules a module imports when it loads: not inside functions, not under
    `if TYPE_CHECKING:`."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(sub, ast.Import):
                names.update(a.name for a in sub.names)
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                names.add(sub.module)
                names.update(f"{sub.module}.{a.name}" for a in sub.names)
    return {n for n in names if n.split(".")[0] == "seqbench"}


def test_there_are_no_import_cycles():
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {
        name: {m for m in _top_level_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle = path[path.index(other) :] + [other]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, [*path, other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_modules_stay_small_or_say_why_not():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > MAX_LINES and "is long because" not in doc:
            long.append(f"{path.relative_to(SRC)} ({lines} lines)")
    assert long == []
