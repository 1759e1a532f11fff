from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from seqbench.cli import app
from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import Measurement, ResultRow
from seqbench.judge.compare import compare_runs
from seqbench.judge.gate import run_checks
from seqbench.judge.stats import (
    mann_whitney_null,
    paired_ratio,
    shift_ci_rank,
    shift_ratio,
    signed_rank_ci_rank,
    signed_rank_null,
)
from seqbench.judge.verdicts import classify
from seqbench.storage import create_run, load_run
from tests.helpers import add_in_processes, make_cell

ENV = {
    "device_names": {"cpu": "x"},
    "cpu": "x",
    "torch": "2.13.0",
    "cuda": None,
    "cudnn": None,
    "threads": 1,
    "flush_denormal": True,
}


def lognormal(seed: int, n: int, median: float = 1e-3, sigma: float = 0.05) -> list[float]:
    return list(np.random.default_rng(seed).lognormal(np.log(median), sigma, n))


def verdict(base, cand, threshold=0.10):
    return classify(shift_ratio(base, cand), threshold)[0]


# --------------------------------------------------------------------------- statistics


def test_mann_whitney_null_distribution_matches_the_exact_counts():
    # n = m = 5: 252 arrangements; U = 0, 1, 2, 3, 4 arise in 1, 1, 2, 3, 5 of them.
    probs = mann_whitney_null(5, 5)
    assert len(probs) == 26 and probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(probs[:5] * 252, [1, 1, 2, 3, 5])
    np.testing.assert_allclose(probs, probs[::-1])  # symmetric


def test_exact_p_values_agree_with_scipy():
    a, b = [1.0, 2.0, 3.0, 4.0, 9.0, 11.0], [5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 13.0]
    u = sps.mannwhitneyu(a, b, method="exact").statistic
    ours = 2 * np.cumsum(mann_whitney_null(6, 7))[int(min(u, 42 - u))]
    assert ours == pytest.approx(sps.mannwhitneyu(a, b, method="exact").pvalue)


def test_shift_interval_ranks_match_the_tables():
    assert shift_ci_rank(5, 5) == 2  # [D(3), D(23)] of 25 (Hollander & Wolfe)
    assert shift_ci_rank(10, 10) == 23  # C = 24
    assert shift_ci_rank(2, 2) == 0  # too few samples: the full range
    assert abs(shift_ci_rank(40, 40) - (40 * 40 / 2 - 1.96 * np.sqrt(40 * 40 * 81 / 12))) < 2


def test_hodges_lehmann_recovers_an_exact_multiplicative_shift():
    base = lognormal(1, 50)
    est = shift_ratio(base, [x * 1.3 for x in base])
    assert est.ratio == pytest.approx(1.3)
    assert est.fast_ratio == pytest.approx(1.3)
    assert est.ci_low < 1.3 < est.ci_high


def test_the_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    hits = sum(
        (e := shift_ratio(rng.lognormal(0, 0.2, 12), rng.lognormal(np.log(1.1), 0.2, 15))).ci_low
        <= 1.1
        <= e.ci_high
        for _ in range(400)
    )
    assert 0.92 <= hits / 400 <= 0.99


# --------------------------------------------------------------------------- verdicts


def test_identical_distributions_give_no_regression():
    assert verdict(lognormal(1, 200), lognormal(2, 200)) == "unchanged"


def test_a_2x_slowdown_is_a_regression():
    assert verdict(lognormal(1, 30), lognormal(2, 30, median=2e-3)) == "regression"


def test_a_3_percent_slowdown_passes_a_10_percent_threshold():
    base, cand = lognormal(1, 500, sigma=0.02), lognormal(2, 500, median=1.03e-3, sigma=0.02)
    est = shift_ratio(base, cand)
    assert est.ci_low > 1  # significant...
    assert classify(est, 0.10)[0] == "unchanged"  # ...but small


def test_a_noisy_15_percent_slowdown_with_few_samples_is_inconclusive():
    base, cand = lognormal(3, 5, sigma=0.3), lognormal(4, 5, median=1.15e-3, sigma=0.3)
    assert verdict(base, cand) == "inconclusive"


def test_interference_in_the_slow_tail_is_not_a_regression():
    rng = np.random.default_rng(5)
    base = lognormal(1, 300, sigma=0.02)
    cand = [x * (1.5 if rng.random() < 0.6 else 1.0) for x in lognormal(2, 300, sigma=0.02)]
    est = shift_ratio(base, cand)
    assert est.ratio > 1.1 and est.ci_low > 1  # the median moved, significantly
    kind, note = classify(est, 0.10)
    assert kind == "inconclusive" and "fastest samples" in note


def test_an_improvement_is_reported_and_can_fail_the_gate():
    base, cand = lognormal(1, 40), lognormal(2, 40, median=0.5e-3)
    assert verdict(base, cand) == "improvement"


# --------------------------------------------------------------------------- runs


def row_for(cell, samples=None, **values):
    if samples is None:
        return ResultRow.for_cell(cell, **values)
    median = float(np.median(samples))
    return ResultRow.for_cell(
        cell, params=values.pop("params", 100), median_s=median, repeats=len(samples), **values
    )


def make_run(root: Path, entries, env=ENV, processes: int = 3, machine=None):
    """A saved run of these rows, each measured cell's samples split between `processes`
    fresh processes (passes 1..n), as `seqbench run --processes n` saves them, with
    `machine[k]` the reference step's time in process k."""
    run = create_run(root, label="t", config={}, env=dict(env), plan=[])
    for row, samples in entries:
        if not samples or row.status != "ok" or processes == 1:
            run.add(Measurement(row, samples or []))
            continue
        add_in_processes(run, row, [float(s) for s in samples], processes, machine)
    run.finish("complete")
    return load_run(run.path)


def test_runs_are_aligned_by_cell_key_and_unmatched_cells_are_listed(tmp_path):
    a, b, c = make_cell(arch="rnn"), make_cell(arch="lstm"), make_cell(arch="gru")
    base = make_run(
        tmp_path,
        [
            (row_for(a, lognormal(1, 20)), lognormal(1, 20)),
            (row_for(b, lognormal(2, 20)), lognormal(2, 20)),
        ],
    )
    cand = make_run(
        tmp_path,
        [
            (row_for(c, lognormal(3, 20)), lognormal(3, 20)),
            (row_for(a, lognormal(4, 20)), lognormal(4, 20)),
        ],
    )
    with pytest.raises(
        SeqbenchError, match=r"the candidate lacks 1 of the baseline's 2 cells \(lstm-T16"
    ):
        compare_runs(base, cand)  # a gate that skips a cell would pass it unseen
    result = compare_runs(base, cand, allow_missing=True)
    assert [x.cell for x in result.cells] == [a]
    assert result.only_baseline == [b] and result.only_candidate == [c]


def test_a_changed_parameter_count_is_a_changed_model(tmp_path):
    cell = make_cell()
    s = lognormal(1, 20)
    base = make_run(tmp_path, [(row_for(cell, s, params=100), s)])
    cand = make_run(tmp_path, [(row_for(cell, s, params=120), s)])
    (only,) = compare_runs(base, cand).cells
    assert only.verdict == "model-changed" and "100 -> 120" in only.note


def test_a_cell_that_now_fails_is_a_regression(tmp_path):
    cell = make_cell()
    s = lognormal(1, 20)
    base = make_run(tmp_path, [(row_for(cell, s), s)])
    cand = make_run(tmp_path, [(row_for(cell, status="oom", message="CUDA out of memory"), None)])
    (only,) = compare_runs(base, cand).cells
    assert only.verdict == "regression" and only.note == "candidate oom: CUDA out of memory"
    assert run_checks(compare_runs(base, cand)) == [
        "1 cell regressed (time, more than 10% and significant)"
    ]


def test_memory_is_compared_exactly(tmp_path):
    cell = make_cell()
    s = lognormal(1, 20)
    base = make_run(tmp_path, [(row_for(cell, s, peak_mem_bytes=1000), s)])
    same = make_run(
        tmp_path, [(row_for(cell, lognormal(9, 20, median=5e-3), peak_mem_bytes=1000), s)]
    )
    bigger = make_run(tmp_path, [(row_for(cell, s, peak_mem_bytes=1200), s)])
    assert compare_runs(base, same, metric="memory").cells[0].verdict == "unchanged"
    grown = compare_runs(base, bigger, metric="memory").cells[0]
    assert (grown.verdict, grown.ratio) == ("regression", 1.2)


def test_environment_differences_are_named(tmp_path):
    cell = make_cell()
    s = lognormal(1, 20)
    base = make_run(tmp_path, [(row_for(cell, s), s)])
    cand = make_run(tmp_path, [(row_for(cell, s), s)], env={**ENV, "torch": "2.14.0", "threads": 2})
    assert compare_runs(base, cand).env_differences == [
        ("torch", "2.13.0", "2.14.0"),
        ("threads", 1, 2),
    ]


def test_a_machine_that_ran_slower_for_the_candidate_is_judged_relative_to_it(tmp_path):
    # Every process of the candidate run caught the machine 35% slower (the reference step
    # too): identical code, which the raw times alone call a regression.
    cell = make_cell()
    s = lognormal(1, 30)
    slowed = [x * 1.35 for x in lognormal(2, 30)]
    quick, slow = [8e-5, 8.1e-5, 7.9e-5], [8e-5 * 1.35, 8.1e-5 * 1.35, 7.9e-5 * 1.35]
    base = make_run(tmp_path, [(row_for(cell, s), s)], machine=quick)
    cand = make_run(tmp_path, [(row_for(cell, slowed), slowed)], machine=slow)
    (raw,) = compare_runs(base, make_run(tmp_path, [(row_for(cell, slowed), slowed)])).cells
    assert (raw.verdict, raw.machine_ratio) == ("regression", None)  # no reference: raw
    (adjusted,) = compare_runs(base, cand).cells
    assert adjusted.verdict == "unchanged"
    assert adjusted.machine_ratio == pytest.approx(1.35)
    assert adjusted.ratio == pytest.approx(raw.ratio / 1.35)
    assert adjusted.note == "the machine ran x1.35 slower for the candidate: judged relative to it"
    # Slower code on an unchanged machine is a regression still.
    code = [x * 1.3 for x in lognormal(3, 30)]
    (slower,) = compare_runs(
        base, make_run(tmp_path, [(row_for(cell, code), code)], machine=quick)
    ).cells
    assert (slower.verdict, slower.note) == ("regression", "")
    assert slower.machine_ratio == pytest.approx(1.0)
    # Another torch would move the reference as well as the cell: not judged relative to it.
    other = make_run(
        tmp_path, [(row_for(cell, slowed), slowed)], env={**ENV, "torch": "2.14.0"}, machine=slow
    )
    (unadjusted,) = compare_runs(base, other).cells
    assert (unadjusted.verdict, unadjusted.machine_ratio) == ("regression", None)


def test_an_exported_run_keeps_its_processes_and_machine_times(cli, tmp_path):
    # An export's samples once came back as one batch: compare then saw one process.
    cell = make_cell()
    s = lognormal(1, 30)
    machine = [8e-5, 9e-5, 1.1e-4]
    run = make_run(tmp_path / "results", [(row_for(cell, s), s)], machine=machine)
    out = tmp_path / "copy.csv"
    result = cli.invoke(app, ["export", str(run.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    copy = load_run(out)
    row = copy.row(cell.cell_id)
    per = copy.rounds_per_process(row)
    assert copy.sample_groups(cell.cell_id, per) == run.sample_groups(cell.cell_id, per)
    assert copy.machine_times(cell.cell_id, per) == run.machine_times(cell.cell_id, per)
    (same,) = compare_runs(run, copy).cells
    assert (same.n_baseline, same.n_candidate, same.ratio) == (3, 3, pytest.approx(1.0))


# --------------------------------------------------------------------------- the command


@pytest.fixture
def pair(tmp_path):
    """Baseline, an unchanged rerun, a 2x slower run, and one from another torch."""
    cells = [make_cell(arch="rnn"), make_cell(arch="lstm")]

    def run(seed, factor=1.0, env=ENV):
        entries = []
        for i, cell in enumerate(cells):
            s = lognormal(seed * 10 + i, 40, median=1e-3 * factor)
            entries.append((row_for(cell, s), s))
        return make_run(tmp_path / "results", entries, env).path

    return {
        "base": run(1),
        "same": run(2),
        "slow": run(3, factor=2.0),
        "fast": run(4, factor=0.5),
        "other": run(6, env={**ENV, "torch": "2.14.0"}),
    }


def test_compare_exits_0_on_noise_and_1_on_a_slowdown(cli, pair):
    ok = cli.invoke(app, ["compare", str(pair["base"]), str(pair["same"])])
    assert ok.exit_code == 0, ok.output
    assert "unchanged" in ok.stdout and "2 unchanged" in ok.stderr
    slow = cli.invoke(app, ["compare", str(pair["base"]), str(pair["slow"])])
    assert slow.exit_code == 1
    assert "regression" in slow.stdout
    assert "FAIL: 2 cells regressed (time, more than 10% and significant)" in slow.stderr


def test_fail_on_improvement(cli, pair):
    assert cli.invoke(app, ["compare", str(pair["base"]), str(pair["fast"])]).exit_code == 0
    result = cli.invoke(
        app, ["compare", str(pair["base"]), str(pair["fast"]), "--fail-on-improvement"]
    )
    assert result.exit_code == 1 and "improved by more than 10%" in result.stderr


def test_a_different_environment_exits_2_unless_allowed(cli, pair):
    result = cli.invoke(app, ["compare", str(pair["base"]), str(pair["other"])])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: the runs come from different environments: torch (2.13.0 -> 2.14.0)"
    )
    assert result.stderr.count("\n") == 1
    allowed = cli.invoke(
        app, ["compare", str(pair["base"]), str(pair["other"]), "--allow-env-mismatch"]
    )
    assert allowed.exit_code == 0
    assert "environments differ: torch (2.13.0 -> 2.14.0)" in allowed.stderr


def test_markdown_output_is_a_table_for_a_job_summary(cli, pair):
    result = cli.invoke(
        app, ["compare", str(pair["base"]), str(pair["slow"]), "--format", "markdown"]
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "### seqbench compare: time"
    assert lines[2].startswith("| arch | baseline | candidate | ratio | 95% CI | verdict |")
    assert "- FAIL: 2 cells regressed" in result.stdout


def test_json_output_parses_and_counts(cli, pair):
    result = cli.invoke(app, ["compare", str(pair["base"]), str(pair["slow"]), "--format", "json"])
    data = json.loads(result.stdout)
    assert data["counts"]["regression"] == 2
    assert data["failures"] == ["2 cells regressed (time, more than 10% and significant)"]
    assert {c["arch"] for c in data["cells"]} == {"rnn", "lstm"}
    assert all(1.8 < c["ratio"] < 2.2 for c in data["cells"])


def test_a_results_csv_with_its_samples_compares_like_a_run(cli, pair, tmp_path):
    base = load_run(pair["base"])
    (tmp_path / "b.csv").write_text((pair["base"] / "results.csv").read_text())
    (tmp_path / "b.samples.csv").write_text((pair["base"] / "samples.csv").read_text())
    (tmp_path / "b.meta.json").write_text((pair["base"] / "meta.json").read_text())
    result = cli.invoke(app, ["compare", str(tmp_path / "b.csv"), str(pair["same"])])
    assert result.exit_code == 0, result.output
    (tmp_path / "b.samples.csv").unlink()
    missing = cli.invoke(app, ["compare", str(tmp_path / "b.csv"), str(pair["same"])])
    assert missing.exit_code == 2
    assert "no timing samples beside the rows" in missing.stderr
    assert base.rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "-0.1"], "--threshold: expected a fraction > 0 (0.05 for 5%), got -0.1"),
        (["--threshold", "0"], "--threshold: expected a fraction > 0 (0.05 for 5%), got 0.0"),
        (["--threshold", "nan"], "--threshold: expected a fraction > 0 (0.05 for 5%), got nan"),
        (["--threshold", "inf"], "--threshold: expected a fraction > 0 (0.05 for 5%), got inf"),
        (["--metric", "speed"], "unknown metric 'speed'; choose from: time, memory, accuracy"),
        (["--format", "html"], "--format: expected table, markdown or json, got 'html'"),
    ],
)
def test_bad_compare_options_are_one_line(cli, pair, args, message):
    result = cli.invoke(app, ["compare", str(pair["base"]), str(pair["same"]), *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_compare_of_missing_runs_is_one_line(cli, tmp_path):
    result = cli.invoke(app, ["compare", "nope1", "nope2", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope1: no such run or results file" in result.stderr


def test_ci_suite_covers_every_seed_architecture_in_both_modes():
    from seqbench.plan.cells import plan
    from seqbench.plan.suites import resolve_config

    cells = plan(resolve_config("ci"))
    assert {(c.arch, c.mode) for c in cells} == {
        (a, m) for a in ("rnn", "lstm", "gru", "conv1d") for m in ("infer", "train")
    }
    assert resolve_config("ci").threads == 1
    assert dataclasses.asdict(resolve_config("ci").measure)["min_time"] >= 1.0


def test_accuracy_is_compared_in_the_tasks_direction(tmp_path):
    s = lognormal(1, 20)
    spread = (-0.002, 0.0, 0.002)  # three seeds a side: a change can be told from seed noise

    def run(acc_value, mse_value):
        entries = []
        for seed, d in enumerate(spread):
            acc = make_cell(task="digits", seed=seed, lr=1e-3)
            mse = make_cell(task="adding", seed=seed, lr=1e-3)
            entries.append((row_for(acc, s, metric="accuracy", metric_value=acc_value + d), s))
            entries.append((row_for(mse, s, metric="mse", metric_value=mse_value + d / 10), s))
        return make_run(tmp_path, entries)

    result = compare_runs(run(0.90, 0.010), run(0.70, 0.005), metric="accuracy")
    verdicts = {c.cell.task: c.verdict for c in result.cells}
    assert verdicts == {"digits": "regression", "adding": "improvement"}  # accuracy down, mse down


# --------------------------------------------------------------------------- holes in a gate


def test_an_empty_candidate_is_refused_not_passed(cli, pair, tmp_path):
    empty = make_run(tmp_path / "results", []).path
    result = cli.invoke(app, ["compare", str(pair["base"]), str(empty)])
    assert result.exit_code == 2
    assert "has no cells: nothing to compare" in result.stderr


def test_a_header_without_rows_is_refused_not_passed(cli, pair, tmp_path):
    loaded = load_run(pair["base"])
    header = (pair["base"] / "results.csv").read_text().splitlines()[0] + "\n"
    (tmp_path / "empty.csv").write_text(header)
    (tmp_path / "empty.meta.json").write_text(json.dumps(loaded.meta.to_dict()))
    result = cli.invoke(app, ["compare", str(pair["base"]), str(tmp_path / "empty.csv")])
    assert result.exit_code == 2 and "has no cells" in result.stderr


def test_runs_with_no_cell_in_common_are_refused(cli, tmp_path):
    s = lognormal(1, 20)
    a = make_run(tmp_path / "results", [(row_for(make_cell(arch="rnn"), s), s)]).path
    b = make_run(tmp_path / "results", [(row_for(make_cell(arch="gru"), s), s)]).path
    result = cli.invoke(app, ["compare", str(a), str(b), "--allow-missing"])
    assert result.exit_code == 2
    assert "have no cells in common: they measured different matrices" in result.stderr


def test_missing_cells_are_refused_unless_allowed(cli, pair, tmp_path):
    s = lognormal(9, 40)
    partial = make_run(tmp_path / "results", [(row_for(make_cell(arch="rnn"), s), s)]).path
    refused = cli.invoke(app, ["compare", str(pair["base"]), str(partial)])
    assert refused.exit_code == 2
    assert "the candidate lacks 1 of the baseline's 2 cells" in refused.stderr
    allowed = cli.invoke(app, ["compare", str(pair["base"]), str(partial), "--allow-missing"])
    assert allowed.exit_code == 0, allowed.output
    assert "only in the baseline (1)" in allowed.stderr


def test_evidence_that_cannot_rule_out_a_regression_exits_3(cli, tmp_path):
    cell = make_cell()
    wide = list(np.random.default_rng(3).lognormal(np.log(1e-3), 0.6, 8))
    base = make_run(tmp_path / "results", [(row_for(cell, wide), wide)]).path
    later = [x * 1.02 for x in reversed(wide)]
    cand = make_run(tmp_path / "results", [(row_for(cell, later), later)]).path
    result = cli.invoke(app, ["compare", str(base), str(cand), "--format", "json"])
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["exit_code"] == 3 and data["failures"] == []
    assert data["undecided"] == [
        "1 cell too noisy to decide: a regression past 10% cannot be ruled out; rerun with "
        "more --processes (the interval narrows as they grow), side by side with `seqbench ab`, "
        "or gate on instruction counts (--count-instructions), which other work cannot move"
    ]
    assert data["cells"][0]["verdict"] == "inconclusive" and data["cells"][0]["undecided"]


def test_a_change_on_a_noisy_cell_is_no_verdict(tmp_path):
    cell = make_cell()
    base_samples, slow = lognormal(1, 40), [x * 1.5 for x in lognormal(2, 40)]
    base = make_run(tmp_path, [(row_for(cell, base_samples), base_samples)])
    flagged = "its 2 threads shared 2 CPUs with 1.9 cores of other work"
    busy = {"noisy": flagged, "threads": 2, "cpus": 2.0, "others_cores": 1.9}
    cand = make_run(tmp_path, [(row_for(cell, slow, **busy), slow)])
    (result,) = compare_runs(base, cand).cells
    assert result.verdict == "inconclusive" and result.undecided
    assert result.ratio == pytest.approx(1.5, rel=0.05)
    assert result.note == f"a {result.ratio - 1:+.0%} change, but noisy: the candidate ({flagged})"
    clean = make_run(tmp_path, [(row_for(cell, slow), slow)])
    assert compare_runs(base, clean).cells[0].verdict == "regression"


def test_a_change_larger_than_the_disturbance_could_make_stands(tmp_path):
    # One thread beside 1.4 busy cores on 2 CPUs waits at most (1 + 1.4) / 2 = 1.2x longer:
    # a 3x slowdown is more than that, a 1.3x one is not (1.3 / 1.2 is within 10%).
    cell = make_cell()
    base_samples = lognormal(1, 40)
    base = make_run(tmp_path, [(row_for(cell, base_samples), base_samples)])
    busy = {"noisy": "busy", "threads": 1, "cpus": 2.0, "others_cores": 1.4}
    verdicts = {}
    for factor in (3.0, 1.3):
        slow = [x * factor for x in lognormal(2, 40)]
        cand = make_run(tmp_path, [(row_for(cell, slow, **busy), slow)])
        verdicts[factor] = compare_runs(base, cand).cells[0]
    assert verdicts[3.0].verdict == "regression"
    assert verdicts[3.0].note == "larger than the other work could explain (at most x1.20)"
    assert verdicts[1.3].verdict == "inconclusive" and verdicts[1.3].undecided
    assert verdicts[1.3].ratio == pytest.approx(1.3, rel=0.05)
    assert verdicts[1.3].note.startswith(f"a {verdicts[1.3].ratio - 1:+.0%} change, but noisy")
    # A busy baseline can fake an improvement the same way, and is discounted the same way.
    fast = [x / 3 for x in lognormal(3, 40)]
    slow_base = make_run(tmp_path, [(row_for(cell, base_samples, **busy), base_samples)])
    quick = make_run(tmp_path, [(row_for(cell, fast), fast)])
    assert compare_runs(slow_base, quick).cells[0].verdict == "improvement"


def test_steps_shorter_than_a_time_slice_keep_their_change_beside_other_work(tmp_path):
    # One thread beside 1.4 busy cores: a 1.3x slowdown is within what sharing could do to a
    # median (x1.20), but sharing takes the CPU in slices of milliseconds, and 0.4 ms steps'
    # fastest tenth escapes them: judged relative to the machine, the change stands.
    cell = make_cell()
    busy = {"noisy": "busy", "threads": 1, "cpus": 2.0, "others_cores": 1.4}
    machine = [8e-5, 8e-5, 8e-5]
    found = {}
    for median in (4e-4, 4e-3):
        base_samples = lognormal(1, 40, median=median)
        slow = [x * 1.3 for x in lognormal(2, 40, median=median)]
        runs = [
            make_run(tmp_path, [(row_for(cell, base_samples), base_samples)], machine=machine),
            make_run(tmp_path, [(row_for(cell, slow, **busy), slow)], machine=machine),
        ]
        found[median] = compare_runs(*runs).cells[0]
        unadjusted = make_run(tmp_path, [(row_for(cell, slow, **busy), slow)])
        assert compare_runs(runs[0], unadjusted).cells[0].verdict == "inconclusive"
    assert found[4e-4].verdict == "regression"
    assert found[4e-4].note.startswith("other work shared the CPUs, in slices longer than")
    assert found[4e-3].verdict == "inconclusive"  # 4 ms steps: a slice can cut every one
    assert found[4e-3].note.startswith(f"a {found[4e-3].ratio - 1:+.0%} change, but noisy")
    two = {**busy, "threads": 2}  # several threads wait for each other at every step
    base_samples = lognormal(1, 40, median=4e-4)
    slow = [x * 1.3 for x in lognormal(2, 40, median=4e-4)]
    runs = [
        make_run(tmp_path, [(row_for(cell, base_samples), base_samples)], machine=machine),
        make_run(tmp_path, [(row_for(cell, slow, **two), slow)], machine=machine),
    ]
    assert compare_runs(*runs).cells[0].verdict == "inconclusive"


# --------------------------------------------------------------------------- paired rounds


def test_signed_rank_null_distribution_matches_the_exact_counts():
    # n = 4: 16 sign patterns; W+ = 0..10 arises in 1,1,1,2,2,2,2,2,1,1,1 of them.
    probs = signed_rank_null(4)
    np.testing.assert_allclose(probs * 16, [1, 1, 1, 2, 2, 2, 2, 2, 1, 1, 1])


def test_paired_interval_ranks_match_the_tables():
    # Two-sided 5% critical values of W: n=8 -> 3, n=10 -> 8, n=20 -> 52 (c-1 = critical).
    assert [signed_rank_ci_rank(n) for n in (8, 10, 20)] == [3, 8, 52]
    assert signed_rank_ci_rank(5) == 0  # too few pairs for 95%: the full range
    assert abs(signed_rank_ci_rank(40) - (40 * 41 / 4 - 1.96 * np.sqrt(40 * 41 * 81 / 24))) < 2


def test_paired_ratio_recovers_a_shift_that_drift_hides_from_two_runs():
    # The machine slows down 2% a round; the candidate costs 5% more in every round.
    base = [1e-3 * 1.02**k for k in range(10)]
    cand = [b * 1.05 for b in base]
    est = paired_ratio(base, cand)
    assert est.ratio == pytest.approx(1.05)
    assert est.ci_low == pytest.approx(1.05) and est.ci_high == pytest.approx(1.05)
    unpaired = shift_ratio(base, cand)
    assert unpaired.ci_low < 1 < unpaired.ci_high  # the drift swamps it without the pairs


def test_paired_ratio_on_fixed_pairs():
    base = [1.0] * 8
    cand = [1.30, 1.32, 1.28, 1.31, 1.29, 1.30, 1.33, 1.27]
    est = paired_ratio(base, cand)
    walsh = sorted((np.log(a) + np.log(b)) / 2 for i, a in enumerate(cand) for b in cand[i:])
    assert est.ratio == pytest.approx(np.exp(np.median(walsh)))
    assert (est.ci_low, est.ci_high) == pytest.approx((np.exp(walsh[3]), np.exp(walsh[-4])))
    assert est.p_value == pytest.approx(2 / 256)  # every sign positive, n = 8


# --------------------------------------------------------------------------- across processes


def processes_of(seed: int, spread: float, n: int = 5, median: float = 1e-3, each: int = 40):
    """Samples of `n` processes whose medians spread by `spread` (lognormal), each process's
    own samples within 2% of its median: a shared machine, where the process is the noise."""
    rng = np.random.default_rng(seed)
    centres = rng.lognormal(np.log(median), spread, n)
    return [list(rng.lognormal(np.log(c), 0.02, each)) for c in centres]


def test_identical_code_on_a_machine_whose_processes_differ_is_no_regression(tmp_path):
    """Five processes a side whose medians spread by 15%: pooled as one process's samples,
    the 300 samples each would make a difference between the two runs' processes look
    significant; judged across processes, it is within the noise."""
    cell = make_cell()
    base_groups, cand_groups = processes_of(1, 0.15), processes_of(2, 0.15)
    pooled_b = [s for g in base_groups for s in g]
    pooled_c = [s for g in cand_groups for s in g]
    base = make_run(tmp_path, [(row_for(cell, pooled_b), pooled_b)], processes=5)
    cand = make_run(tmp_path, [(row_for(cell, pooled_c), pooled_c)], processes=5)
    (result,) = compare_runs(base, cand).cells
    assert result.verdict not in ("regression", "improvement")
    assert (result.n_baseline, result.n_candidate) == (5, 5)
    assert result.ci_low < 1 < result.ci_high  # no change claimed
    pooled = shift_ratio(pooled_b, pooled_c)
    assert pooled.ci_low > 1 or pooled.ci_high < 1  # the samples alone claimed one


def test_a_slowdown_past_the_processes_spread_is_a_regression(tmp_path):
    cell = make_cell()
    base_groups = processes_of(3, 0.03)
    cand_groups = [[s * 1.3 for s in g] for g in processes_of(4, 0.03)]
    pooled_b = [s for g in base_groups for s in g]
    pooled_c = [s for g in cand_groups for s in g]
    base = make_run(tmp_path, [(row_for(cell, pooled_b), pooled_b)], processes=5)
    cand = make_run(tmp_path, [(row_for(cell, pooled_c), pooled_c)], processes=5)
    (result,) = compare_runs(base, cand).cells
    assert result.verdict == "regression" and 1.2 < result.ratio < 1.4


def test_one_process_on_a_side_is_undecided_not_a_verdict(tmp_path):
    cell = make_cell()
    base_samples, slow = lognormal(1, 40), lognormal(2, 40, median=2e-3)
    base = make_run(tmp_path, [(row_for(cell, base_samples), base_samples)], processes=1)
    cand = make_run(tmp_path, [(row_for(cell, slow), slow)], processes=3)
    (result,) = compare_runs(base, cand).cells
    assert result.verdict == "inconclusive" and result.undecided
    assert result.note.startswith("one process on the baseline:")
    assert "--processes 3" in result.note and "seqbench ab" in result.note


def test_a_regression_that_page_faults_says_so(tmp_path):
    # Seen on identical code: a host that slowed every cell of the second run, where one
    # cell's steps went from 0.01 page faults each to 95. The verdict stands (new
    # allocations in the code look the same); the note says where to look.
    cell = make_cell()
    base_samples, slow = lognormal(1, 40), [x * 1.5 for x in lognormal(2, 40)]
    base = make_run(tmp_path, [(row_for(cell, base_samples, faults_per_step=0.01), base_samples)])
    notes = {}
    for faults in (95.0, 5.0, None):
        cand = make_run(tmp_path, [(row_for(cell, slow, faults_per_step=faults), slow)])
        (result,) = compare_runs(base, cand).cells
        assert result.verdict == "regression"
        notes[faults] = result.note
    assert notes[95.0] == (
        "its steps page-fault 95 times each, 0.01 before: new allocations in the code, "
        "or the machine reclaiming memory"
    )
    assert notes[5.0] == notes[None] == ""


def test_a_run_that_lost_its_median_column_is_damaged_not_passed(cli, pair):
    rows = pair["same"] / "results.csv"
    table = [line.split(",") for line in rows.read_text().splitlines()]  # no quoted fields
    at = table[0].index("median_s")
    rows.write_text("".join(",".join(r[:at] + r[at + 1 :]) + "\n" for r in table))
    for args in (["compare", str(pair["base"]), str(pair["same"])], ["show", str(pair["same"])]):
        result = cli.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert result.stderr == (
            f"error: {rows}: damaged results (no median_s column: the measured cells' times "
            "are lost)\n"
        )


@pytest.mark.parametrize("bad", ["nan", "-0.001", "0", "inf"])
def test_samples_that_cannot_be_times_are_damage_not_a_verdict(cli, pair, bad):
    samples = pair["same"] / "samples.csv"
    lines = samples.read_text().splitlines(keepends=True)
    cell_id, _, *rest = lines[1].split(",")
    lines[1] = ",".join([cell_id, bad, *rest])
    samples.write_text("".join(lines))
    result = cli.invoke(app, ["compare", str(pair["base"]), str(pair["same"])])
    assert result.exit_code == 2, result.output
    # One line, and no numpy warnings before it.
    assert result.stderr == (
        f"error: {samples}: damaged samples (line 2: {bad} is not a time in seconds)\n"
    )
    lines[1] = ",".join([cell_id, "0.001", rest[0], f"{bad}\n"])  # the machine's time
    samples.write_text("".join(lines))
    result = cli.invoke(app, ["compare", str(pair["base"]), str(pair["same"])])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: {samples}: damaged samples (line 2: machine time {bad} is not a time in seconds)\n"
    )


def test_a_run_compared_with_itself_is_refused_not_judged(cli, pair):
    # `compare latest latest` said UNDECIDED (exit 3), a verdict on nothing.
    base = pair["base"]
    for args in ([str(base), str(base)], [str(base), str(base / "results.csv")]):
        result = cli.invoke(app, ["compare", *args])
        assert result.exit_code == 2, result.output
        assert result.stderr == (
            f"error: {args[0]} and {args[1]} are the same run ({base.name}): a run compared "
            "with itself says nothing; give two runs (or `seqbench ab` two versions)\n"
        )


def test_a_long_comparison_table_shows_every_changed_cell_and_says_what_it_left_out(
    cli, tmp_path, monkeypatch
):
    # Past TABLE_ROWS cells the table keeps the cells that are not unchanged, then fills up
    # with unchanged ones; the verdict, the summary and the JSON still count every cell.
    from seqbench.cli import compare as compare_module

    monkeypatch.setattr(compare_module, "TABLE_ROWS", 2)
    cells = [make_cell(seq_len=16 * (i + 1)) for i in range(4)]
    same = [lognormal(i, 20) for i in range(4)]
    slower = same[:3] + [[2 * s for s in same[3]]]  # the last cell doubles
    base = make_run(tmp_path / "a", [(row_for(c, s), s) for c, s in zip(cells, same, strict=True)])
    cand = make_run(
        tmp_path / "b", [(row_for(c, s), s) for c, s in zip(cells, slower, strict=True)]
    )
    result = cli.invoke(app, ["compare", str(base.path), str(cand.path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "showing 2 of 4 cells (the ones not unchanged first)" in result.stderr
    shown = [
        line for line in result.stdout.splitlines() if "regression" in line or "unchanged" in line
    ]
    assert [line.split()[0] for line in shown] == ["16", "64"]  # in the comparison's order
    everything = cli.invoke(app, ["compare", str(base.path), str(cand.path), "--format", "json"])
    assert len(json.loads(everything.stdout)["cells"]) == 4
