"""How often does the gate get it wrong on a loaded machine? `ab` against `run` + `compare`.

The script builds a small git repository holding a user factory in two versions: `base`,
and `slower`, which does about 30% more work per step with the same parameters (so the
cells and their keys are the same). While `--busy` processes spin on the CPUs the whole
time, it runs `--trials` comparisons of each kind and counts their exit codes:

- `ab base base` (identical code) and `ab base slower` (a real slowdown), measured side by
  side in alternating rounds;
- a `seqbench run` of `base`, then one of each candidate (`base` again, and `slower`),
  each compared with the first by `seqbench compare`;
- a pytest session through the plugin at `base`, then one per candidate judged against it
  (`--seqbench-compare`, `--seqbench-fail-on regression`).

The two cases of a trial share its baseline (three runs a trial, not four), and which is
measured first alternates from trial to trial.

`run+compare` and `pytest` measure each cell in `--processes` fresh processes (seqbench's
default when not given) and judge across them.

Exit 0 is a pass, 1 a reported regression, 3 "too noisy to decide" (for pytest: a session
that printed UNDECIDED, which `--seqbench-fail-on regression` lets through with exit 0).
A gate should never report a regression for identical code, and should catch the slowdown:

    python benchmarks/gate_error_rates.py --trials 10 --busy 2
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FACTORY = """
import torch
from torch import nn

REPEATS = {repeats}


class Core(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.proj = nn.Linear(shape.input_size, shape.hidden)
        self.mix = nn.Linear(shape.hidden, shape.hidden)

    def forward(self, x):
        h = self.proj(x)
        for _ in range(REPEATS):
            h = torch.tanh(self.mix(h))
        return h


def make_core(shape):
    return Core(shape)
"""

# Two cells (inference and training), timed as the ci suite times them: 1.5 s of samples.
CELLS = ["--arch", "gatepkg.models:make_core", "--seq-len", "64", "--batch-size", "16",
         "--hidden", "64", "--mode", "infer,train", "--min-time", "1.5", "--threads", "1"]  # fmt: skip

# The same two cells from a pytest test, through the plugin (the module goes to the
# session's workers pickled: Core is importable from the repository).
PYTEST_FILE = """
import torch
from gatepkg.models import Core


class Shape:
    input_size = 64
    hidden = 64


def inputs(batch_size, seq_len):
    return torch.randn(batch_size, seq_len, 64)


def square(y):
    return y.square().mean()


def test_core(seqbench):
    seqbench(Core(Shape()), inputs, seq_len=64, batch_size=16, mode=["infer", "train"],
             loss=square, min_time=1.5)
"""


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.email=b@b", "-c", "user.name=b", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def make_repository(root: Path, base: int, slower: int, **more: int) -> Path:
    """A git repository whose tags (`base`, `slower`, then any in `more`) hold the factory
    with that many repeats of its work: same parameters, so the same cells and keys."""
    package = root / "gatepkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    git(root, "init", "-q")
    for tag, repeats in {"base": base, "slower": slower, **more}.items():
        (package / "models.py").write_text(FACTORY.format(repeats=repeats))
        git(root, "add", "-A")
        git(root, "commit", "-qm", tag)
        git(root, "tag", tag)
    return root


def seqbench(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m seqbench ARGS` in the repository, its factory importable; this checkout's
    import path kept, so the seqbench being measured is the one running the script."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "seqbench", *args], cwd=repo, env=env, capture_output=True,
        text=True, timeout=3600,
    )  # fmt: skip


def ratios_of(stdout: str) -> list[float]:
    try:
        return [c["ratio"] for c in json.loads(stdout)["cells"] if c.get("ratio")]
    except (json.JSONDecodeError, KeyError):
        return []


def ab_trial(repo: Path, out: Path, candidate: str, rounds: int) -> tuple[int, list[float]]:
    done = seqbench(repo, "ab", "base", candidate, *CELLS, "--rounds", str(rounds),
                    "--root", str(out), "--format", "json")  # fmt: skip
    return done.returncode, ratios_of(done.stdout)


def run_compare_trial(
    repo: Path, out: Path, candidates: list[str], processes: list[str]
) -> dict[str, tuple[int, list[float]]]:
    """One `seqbench run` at `base`, then one per candidate, each compared with it: the
    candidates of a trial share its baseline (three runs a trial, not four)."""

    def run(version: str) -> Path:
        git(repo, "checkout", "-q", version)
        csv = out / f"rc-{version}-{time.time_ns()}.csv"
        done = seqbench(repo, "run", *CELLS, *processes, "--root", str(out), "--csv",
                        str(csv), "-q")  # fmt: skip
        if done.returncode not in (0, 1):
            raise SystemExit(done.stderr)
        return csv

    baseline = run("base")
    measured = [(candidate, run(candidate)) for candidate in candidates]
    git(repo, "checkout", "-q", "base")
    found = {}
    for candidate, csv in measured:
        done = seqbench(repo, "compare", str(baseline), str(csv), "--format", "json")
        found[candidate] = done.returncode, ratios_of(done.stdout)
    return found


def pytest_trial(
    repo: Path, out: Path, candidates: list[str], processes: list[str]
) -> dict[str, tuple[int, list[float]]]:
    """A baseline pytest session at `base`, then one session per candidate gated against it
    (`--seqbench-fail-on regression`): each gated session's exit code, and the ratios
    `seqbench compare` finds between its run and the baseline's."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from seqbench.storage import list_run_dirs

    (repo / "test_gate.py").write_text(PYTEST_FILE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), *sys.path])}
    # The plugin by name only where its entry point is not installed (a source checkout):
    # with the entry point, pytest loads it already and a second -p is an internal error.
    names = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    load = [] if "seqbench.pytest_plugin" in names else ["-p", "seqbench.pytest_plugin"]
    options = [*load, "-q", "-p", "no:cacheprovider",
               "--seqbench-root", str(out), "--seqbench-threads", "1",
               *(["--seqbench-processes", processes[1]] if processes else [])]  # fmt: skip

    def session(version: str, *more: str) -> subprocess.CompletedProcess:
        git(repo, "checkout", "-q", version)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "test_gate.py", *options, *more],
            cwd=repo, env=env, capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        if done.returncode not in (0, 1, 3) or "seqbench:" not in done.stdout:
            raise SystemExit(done.stdout + done.stderr)  # pytest's own 3 is an internal error
        return done

    session("base", "--seqbench-label", "gate-base")
    baseline = list_run_dirs(out)[0]
    if not baseline.name.endswith("gate-base"):
        raise SystemExit(f"the baseline session saved no run under {out}")
    found = {}
    for candidate in candidates:
        done = session(candidate, "--seqbench-compare", str(baseline), "--seqbench-fail-on",
                       "regression")  # fmt: skip
        git(repo, "checkout", "-q", "base")
        judged = seqbench(repo, "compare", str(baseline), str(list_run_dirs(out)[0]),
                          "--format", "json")  # fmt: skip
        # Under --seqbench-fail-on regression an undecided gate exits 0 (it lets the change
        # through): counted as 3 here, as `seqbench compare` would exit.
        undecided = done.returncode == 0 and "seqbench: UNDECIDED" in done.stdout
        found[candidate] = (3 if undecided else done.returncode), ratios_of(judged.stdout)
    return found


def main() -> int:
    from neighbours import busy  # beside this script (imported from tests, it is not run)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="comparisons of each kind")
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside")
    parser.add_argument("--rounds", type=int, default=10, help="ab's rounds of pairs")
    parser.add_argument("--repeats", type=int, nargs=2, default=(3, 4), metavar=("BASE", "SLOWER"),
                        help="the factory's layers of work in base and slower (default 3 4)")  # fmt: skip
    parser.add_argument("--kinds", default="ab,run+compare,pytest", help="which gates to try")
    parser.add_argument("--processes", type=int, default=None,
                        help="processes per cell for run+compare and pytest (default: seqbench's)")  # fmt: skip
    args = parser.parse_args()

    processes = [] if args.processes is None else ["--processes", str(args.processes)]
    scratch = Path(tempfile.mkdtemp(prefix="seqbench-gate-"))
    repo = make_repository(scratch / "repo", *args.repeats)
    out = scratch / "results"
    outcomes: dict[str, collections.Counter] = {}
    ratios: dict[str, list[float]] = collections.defaultdict(list)
    started = time.time()
    with busy(args.busy):
        for trial in range(args.trials):
            # The two cases share a trial's baseline; which is measured first alternates, so
            # that neither always comes longer after it.
            cases = [("identical", "base"), ("slower", "slower")][:: 1 if trial % 2 == 0 else -1]
            for kind in args.kinds.split(","):
                if kind == "ab":
                    results = {c: ab_trial(repo, out, c, args.rounds) for _, c in cases}
                elif kind == "pytest":
                    results = pytest_trial(repo, out, [c for _, c in cases], processes)
                else:
                    results = run_compare_trial(repo, out, [c for _, c in cases], processes)
                for case, candidate in sorted(cases):
                    code, found = results[candidate]
                    name = f"{kind:<12} {case}"
                    outcomes.setdefault(name, collections.Counter())[code] += 1
                    ratios[name] += found
                    print(f"trial {trial + 1} {name}: exit {code} ratios {found}", flush=True)
    minutes = (time.time() - started) / 60
    print(
        f"\n{args.trials} trials each, {args.busy} busy processes beside, "
        f"{len(os.sched_getaffinity(0))} CPUs, {minutes:.0f} min"
    )
    print(f"{'gate and case':<26}{'exit 0':>8}{'exit 1':>8}{'exit 3':>8}{'other':>7}  median ratio")
    for name, counts in outcomes.items():
        other = sum(n for code, n in counts.items() if code not in (0, 1, 3))
        middle = statistics.median(ratios[name]) if ratios[name] else float("nan")
        print(f"{name:<26}{counts[0]:>8}{counts[1]:>8}{counts[3]:>8}{other:>7}  {middle:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
