"""The GitHub Action's shell script, run here: a fake job summary, a fake `gh` that records
its arguments, and real `seqbench compare` verdicts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqbench.core.schema import ResultRow
from seqbench.storage import create_run
from tests.helpers import add_in_processes, make_cell

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".github" / "seqbench-action.sh"
MARKER = "<!-- seqbench-action -->"

FAKE_GH = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$GH_LOG"
case "$*" in *--paginate*) [ -n "${FAKE_EXISTING:-}" ] && echo "$FAKE_EXISTING" ;; esac
exit 0
"""

# What GitHub gives a pull request's job, with a token: the script then comments.
PULL_REQUEST = {"GH_TOKEN": "t", "PR_NUMBER": "7", "GITHUB_REPOSITORY": "o/r"}

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def saved(root: Path, label: str, factor: float) -> Path:
    """A run of two cells with 20 samples each, every sample × factor, dealt in turn to
    three processes so that each process's samples spread alike."""
    run = create_run(root, label=label, config={}, env={"cpu": "Test CPU", "threads": 1}, plan=[])
    spread = [1e-3 * (1 + 0.005 * k) * factor for k in range(20)]
    samples = spread[0::3] + spread[1::3] + spread[2::3]
    rows = [
        ResultRow.for_cell(make_cell(arch=a), median_s=spread[10], params=100, status="ok")
        for a in ("lstm", "gru")
    ]
    for row in rows:
        add_in_processes(run, row, samples)
    run.finish("complete")
    return run.path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("action")
    return {
        "base": saved(root, "base", 1.0),
        "same": saved(root, "same", 1.0),
        "slow": saved(root, "slow", 1.3),
    }


def action(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, str, list[str]]:
    """Run the script as the action does; return its outcome, the summary and gh's calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(0o755)
    summary, log = tmp_path / "summary.md", tmp_path / "gh.log"
    summary.write_text("earlier steps' summary\n")
    full = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO / "src"),
        "SEQBENCH": f"{sys.executable} -m seqbench",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "RESULTS": str(tmp_path / "out"),
        "GH_LOG": str(log),
        "COLUMNS": "120",
        **env,
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=300
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done, summary.read_text(), calls


def test_a_regression_fails_with_the_verdict_in_the_summary_and_one_new_comment(runs, tmp_path):
    done, summary, calls = action(
        tmp_path,
        BASELINE=str(runs["base"]),
        CANDIDATE=str(runs["slow"]),
        **PULL_REQUEST,
    )
    assert done.returncode == 1, done.stderr
    assert summary.startswith(
        "earlier steps' summary\n## seqbench compare: ci against the baseline: regression\n"
    )
    assert summary.count("| regression |") == 2 and "FAIL: 2 cells regressed" in summary
    assert MARKER not in summary  # the marker is for the comment only
    comment = tmp_path / "out" / "comment.md"
    assert comment.read_text().startswith(MARKER + "\n## seqbench compare")
    assert calls == [
        f'api repos/o/r/issues/7/comments --paginate --jq .[] | select(.body | contains("{MARKER}")) | .id',
        f"api -X POST repos/o/r/issues/7/comments -F body=@{comment}",
    ]
    outputs = (tmp_path / "output").read_text()
    assert "exit-code=1\n" in outputs and f"verdict={tmp_path / 'out' / 'verdict.md'}" in outputs


def test_the_comment_is_updated_in_place_when_it_exists(runs, tmp_path):
    done, _, calls = action(
        tmp_path,
        BASELINE=str(runs["base"]),
        CANDIDATE=str(runs["same"]),
        **PULL_REQUEST,
        FAKE_EXISTING="4242",
    )
    assert done.returncode == 0, done.stderr
    comment = tmp_path / "out" / "comment.md"
    assert calls[1] == f"api -X PATCH repos/o/r/issues/comments/4242 -F body=@{comment}"
    assert len(calls) == 2
    assert ": no regression\n" in comment.read_text()


def test_without_a_token_there_is_no_comment_and_without_a_baseline_no_verdict(runs, tmp_path):
    done, summary, calls = action(
        tmp_path, BASELINE=str(tmp_path / "none.csv"), CANDIDATE=str(runs["same"])
    )
    assert done.returncode == 0, done.stderr
    assert calls == []
    assert "## seqbench: no baseline yet: no regression" in summary
    assert "this run can become it" in summary


def test_bad_input_is_exit_2_with_the_error_in_the_summary(runs, tmp_path):
    done, summary, _ = action(
        tmp_path, BASELINE=str(runs["base"]), CANDIDATE=str(runs["same"]), THRESHOLD="-1"
    )
    assert done.returncode == 2
    assert "error (exit 2)" in summary and "error: --threshold: expected a fraction" in summary


def test_ab_mode_measures_both_refs_side_by_side(tmp_path):
    """`ab` itself is tested elsewhere; here a stand-in records what the script asks of it."""
    fake = tmp_path / "fake-seqbench"
    fake.write_text(
        '#!/usr/bin/env bash\nprintf \'%s\\n\' "$*" > "$RESULTS/argv"\n'
        'echo "| lstm | inconclusive |"\nexit 3\n'
    )
    fake.chmod(0o755)
    done, summary, calls = action(
        tmp_path, SEQBENCH=str(fake), AB_BASELINE="origin/main", SUITE="quick", ARGS="--threads 1"
    )
    assert done.returncode == 3
    out = tmp_path / "out"
    assert (out / "argv").read_text() == (
        f"ab origin/main HEAD --suite quick --threshold 0.10 --out {out / 'runs'} "
        "--format markdown --threads 1\n"
    )
    assert "## seqbench ab: origin/main -> HEAD: too noisy to decide: rerun\n" in summary
    assert "| lstm | inconclusive |" in summary and calls == []


def test_the_action_runs_the_script_with_its_inputs():
    yaml = pytest.importorskip("yaml")  # PyYAML comes with Ray, in the dev extra
    spec = yaml.safe_load((REPO / "action.yml").read_text())
    assert spec["runs"]["using"] == "composite"
    step = spec["runs"]["steps"][-1]
    assert "${{" not in spec["runs"]["steps"][0]["run"]
    assert step["run"] == 'bash "$GITHUB_ACTION_PATH/.github/seqbench-action.sh"'
    # Inputs reach the script as environment variables, never pasted into the shell line.
    assert "${{" not in step["run"]
    assert {"SUITE", "BASELINE", "AB_BASELINE", "THRESHOLD", "GH_TOKEN", "PR_NUMBER"} <= set(
        step["env"]
    )
