"""The process is the unit of noise: cells measured in fresh worker processes, their figure
and interval across the processes, and processes that disagree flagged."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from seqbench.cli import app
from seqbench.core.schema import Measurement, ResultRow
from seqbench.judge.noise import findings, flag
from seqbench.judge.stats import (
    RUN_TERM,
    across_processes,
    process_ratio,
    process_speeds,
    trimmed_mean,
)
from seqbench.judge.verdicts import classify
from seqbench.storage import create_run, load_run
from tests.helpers import SMALL_FLAGS, add_in_processes, make_cell


def test_across_processes_is_the_geometric_mean_of_medians_with_a_prediction_interval():
    """Where a repeat of the run lands: mean ± t·s·√(RUN_TERM + 1/n) of the medians' logs,
    the run's own moment taken as half the processes' variance."""
    groups = [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [4.0, 8.0, 12.0]]  # medians 2, 4, 8
    across = across_processes(groups)
    logs = [math.log(2), math.log(4), math.log(8)]
    half = sps.t.ppf(0.975, 2) * math.log(2) * math.sqrt(0.5 + 1 / 3)  # the logs' sd is ln 2
    assert across.center == pytest.approx(4.0)
    assert (across.low, across.high) == (
        pytest.approx(math.exp(sum(logs) / 3 - half)),
        pytest.approx(math.exp(sum(logs) / 3 + half)),
    )
    assert across.spread == pytest.approx(math.log(2)) and across.n == 3
    with pytest.raises(ValueError, match="at least two processes"):
        across_processes([[1.0, 2.0]])


def test_samples_are_split_by_the_process_they_came_from(tmp_path):
    run = create_run(tmp_path, label="t", config={}, env={}, plan=[])
    row = ResultRow.for_cell(make_cell(), median_s=1.0, params=1)
    add_in_processes(run, row, [1.0, 1.1, 2.0, 2.1, 3.0, 3.1], processes=3)
    run.finish("complete")
    loaded = load_run(run.path)
    (saved,) = loaded.rows
    assert (saved.rounds, saved.processes) == (3, 3)
    assert loaded.sample_groups(saved.cell_id, 1) == [[1.0, 1.1], [2.0, 2.1], [3.0, 3.1]]
    assert loaded.sample_groups(saved.cell_id) == [[1.0, 1.1, 2.0, 2.1, 3.0, 3.1]]


def test_processes_that_disagree_past_what_their_samples_explain_are_flagged():
    cell = make_cell()
    base = {"median_s": 1e-3, "ci_low_s": 0.99e-3, "ci_high_s": 1.01e-3, "processes": 3}
    agree = ResultRow.for_cell(cell, process_spread=0.02, within_spread=0.01, **base)
    apart = ResultRow.for_cell(cell, process_spread=0.15, within_spread=0.01, **base)
    assert flag(agree) == ""
    assert [short for short, _ in findings(apart)] == ["processes ±15%"]
    assert flag(apart) == (
        "its 3 processes disagree by ±15%, more than their own samples explain (±1.0%)"
    )


def test_a_run_measures_each_cell_in_fresh_processes_and_judges_across_them(cli, tmp_path):
    """Two processes of two rounds each: four passes a cell, in two worker processes."""
    flags = [f for f in SMALL_FLAGS]
    flags[flags.index("--processes") + 1] = "2"
    result = cli.invoke(
        app, ["run", "--arch", "rnn,gru", "--seq-len", "16", "--mode", "infer", *flags,
              "--rounds", "2", "--threads", "1", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = load_run("latest", tmp_path)
    assert run.meta.config["measure"]["processes"] == 2
    for row in run.rows:
        assert (row.status, row.rounds, row.processes) == ("ok", 4, 2)
        groups = run.sample_groups(row.cell_id, run.rounds_per_process(row))
        across = across_processes(groups)
        assert (row.median_s, row.ci_low_s, row.ci_high_s) == pytest.approx(
            (across.center, across.low, across.high)
        )
        assert row.process_spread == pytest.approx(across.spread)
    # Each pass's samples are kept apart in samples.csv, so a reader splits them again.
    rounds = {
        line.split(",")[2] for line in (run.path / "samples.csv").read_text().splitlines()[1:]
    }
    assert rounds == {"1", "2", "3", "4"}


def test_one_process_keeps_the_samples_interval_and_says_one_process(tmp_path):
    run = create_run(tmp_path, label="t", config={}, env={}, plan=[])
    row = ResultRow.for_cell(make_cell(), median_s=1.0, params=1, processes=1)
    run.add(Measurement(row, [1.0, 1.1, 0.9]))
    assert run.sample_groups(row.cell_id, run.rounds_per_process(row)) == [[1.0, 1.1, 0.9]]


def test_threads_follow_other_work_that_arrives_for_the_cells_still_to_come():
    """A cell whose two threads met 1.6 busy cores of other work on 2 CPUs: the cells not
    yet started get one thread; a started cell keeps its own; the user's choice stays."""
    from seqbench.execute.threads import ThreadsWatch
    from seqbench.plan.config import SuiteConfig

    config = SuiteConfig(threads=2)
    first, second = make_cell(arch="rnn"), make_cell(arch="gru")
    watch = ThreadsWatch(config, chosen_here=True)
    assert watch.request(first).process.threads == 2
    quiet = ResultRow.for_cell(first, median_s=1.0, threads=2, cpus=2.0, others_cores=0.1)
    assert watch.observe(quiet) == ""
    busy = ResultRow.for_cell(first, median_s=1.0, threads=2, cpus=2.0, others_cores=1.6)
    line = watch.observe(busy)
    assert line.startswith("other work arrived (1.6 of 2 CPUs busy while rnn-T16")
    assert "measured with 1 thread instead of 2" in line
    assert watch.request(second).process.threads == 1
    assert watch.request(first, round=2).process.threads == 2  # its processes never mix
    assert watch.observe(busy) == ""  # said once
    asked = ThreadsWatch(config, chosen_here=False)
    assert asked.observe(busy) == "" and asked.request(second).process.threads == 2


def test_two_runs_are_compared_with_a_runs_variance_on_each_side():
    """Welch's interval on the processes' mean log medians, each side's variance
    s²(RUN_TERM + 1/n), by hand: medians 1, 2, 4 against 2, 4, 8 (a doubling)."""
    base = [[0.9, 1.0, 1.1], [1.8, 2.0, 2.2], [3.6, 4.0, 4.4]]
    cand = [[x * 2 for x in g] for g in base]
    est = process_ratio(base, cand)
    var = math.log(2) ** 2 * (RUN_TERM + 1 / 3)  # each side's logs have sd ln 2
    df = (2 * var) ** 2 / (2 * var**2 / 2)
    half = sps.t.ppf(0.975, df) * math.sqrt(2 * var)
    assert est.ratio == pytest.approx(2.0)
    assert (est.ci_low, est.ci_high) == (
        pytest.approx(2 * math.exp(-half)),
        pytest.approx(2 * math.exp(half)),
    )


def test_more_processes_narrow_the_comparison_below_a_whole_runs_floor():
    """The run term is half the processes' variance, not all of it: with ten
    processes a side the interval is narrower than t·s·√2, below which it could never go
    if a run's moment were as large as a process's (RUN_TERM = 1), so the undecided
    message's "rerun with more --processes" is a promise kept."""
    logs = np.random.default_rng(3).normal(0, 0.05, 10)
    groups = [[math.exp(x)] for x in logs]
    s, df = float(np.std(logs, ddof=1)), 18
    half = math.log(process_ratio(groups, groups).ci_high)
    assert half < 0.8 * sps.t.ppf(0.975, df) * s * math.sqrt(2)


def test_a_side_is_its_processes_trimmed_mean_with_yuens_variance():
    """The slowest fifth set aside, its values Winsorized for the variance: checked against
    scipy's trimming and Winsorizing, and Yuen's s_w²(n-1)/(h(h-1)) by hand."""
    from scipy.stats import mstats, trim1

    logs = np.log([1.0, 1.1, 1.05, 1.7, 0.97, 1.02, 1.08, 1.65, 1.01, 1.04])
    mean, var, kept = trimmed_mean(logs, run_term=0.0)
    assert kept == 8
    assert mean == pytest.approx(float(np.mean(trim1(logs, 0.2, tail="right"))))
    s2 = float(np.var(mstats.winsorize(logs, limits=(0, 0.2)).data, ddof=1))
    assert var == pytest.approx(s2 * 9 / (8 * 7))
    assert trimmed_mean(logs)[1] == pytest.approx(s2 * (RUN_TERM + 9 / 56))
    # Below five processes nothing is set aside: the plain mean and s²(RUN_TERM + 1/n).
    few = logs[:4]
    assert trimmed_mean(few) == pytest.approx(
        (float(few.mean()), float(few.var(ddof=1)) * (RUN_TERM + 1 / 4), 4)
    )


def _processes(seed: int, slow: dict[int, float] | None = None, scale: float = 1.0):
    """Five processes of 60 steps around 1 ms, 3% apart; `slow` runs a process's whole window
    that many times slower, as a process in a busy machine's slow mode does."""
    rng = np.random.default_rng(seed)
    speeds = np.exp(rng.normal(0, 0.03, 5))
    return [
        list(1e-3 * scale * speeds[k] * (slow or {}).get(k, 1.0) * rng.lognormal(0, 0.02, 60))
        for k in range(5)
    ]


def test_one_process_in_a_slow_mode_leaves_identical_code_decided():
    """Beside a busy process, one process in five sometimes runs every step 1.7x slower. The
    untrimmed mean of the medians is then undecided about identical code; set aside, the
    comparison says unchanged, and still catches a 1.3x slowdown with a slow process."""
    base, cand = _processes(1), _processes(2, slow={3: 1.7})
    est = process_ratio(base, cand)
    assert classify(est, 0.10)[0] == "unchanged"
    assert 0.97 < est.ratio < 1.03
    # The untrimmed estimate, by hand: the slow process widens it past both thresholds.
    b, c = (np.log([np.median(g) for g in side]) for side in (base, cand))
    vb, vc = (x.var(ddof=1) * (RUN_TERM + 1 / 5) for x in (b, c))
    df = (vb + vc) ** 2 / (vb**2 / 4 + vc**2 / 4)
    half = sps.t.ppf(0.975, df) * math.sqrt(vb + vc)
    d, edge = c.mean() - b.mean(), math.log(1.1)
    assert d + half > edge and d - half < -edge  # spans both thresholds: too noisy to tell
    assert half > 2 * math.log(est.ci_high / est.ratio)
    slower = process_ratio(base, _processes(3, slow={0: 1.7}, scale=1.3))
    assert classify(slower, 0.10)[0] == "regression"
    assert slower.ratio == pytest.approx(1.3, rel=0.05)


def test_a_burst_inside_a_process_window_leaves_its_speed():
    """A process's speed is its steps' lower quartile: other work slowing the later 55% of
    its window moves the median, not the quartile."""
    steps = list(np.random.default_rng(5).lognormal(np.log(1e-3), 0.01, 100))
    burst = steps[:45] + [x * 1.6 for x in steps[45:]]
    (quiet, busy) = np.exp(process_speeds([steps, burst]))
    assert busy == pytest.approx(quiet, rel=0.01)
    assert np.median(burst) > 1.05 * np.median(steps)


def test_speeds_relative_to_the_machine_cancel_what_the_machine_did_to_whole_processes():
    """Two runs of identical code where the machine ran the candidate's processes 1.2-1.7x
    slower, the reference step just as much: judged on raw speeds that is a regression;
    relative to the machine, the difference is the code's, exactly nothing."""
    base = _processes(1)
    pace = [1.0, 1.0, 1.2, 1.7, 1.3]
    cand = [[x * pace[k] for x in g] for k, g in enumerate(base)]
    quick = [8e-5] * 5
    slow = [8e-5 * p for p in pace]
    raw = process_ratio(base, cand)
    assert classify(raw, 0.10)[0] != "unchanged"
    est = process_ratio(base, cand, machine=(quick, slow))
    same = process_ratio(base, base)  # the same processes on both sides
    assert (est.ratio, est.ci_low, est.ci_high) == pytest.approx(
        (1.0, same.ci_low, same.ci_high), abs=1e-12
    )
    assert classify(est, 0.10)[0] == "unchanged"
    # The fast ratio is taken relative to the two runs' mean machine speeds: the pooled
    # 10th percentiles moved with the slow processes, and the shift takes their mean off.
    even = [[x * 1.4 for x in g] for g in base]
    shifted = process_ratio(base, even, machine=(quick, [8e-5 * 1.4] * 5))
    assert (shifted.ratio, shifted.fast_ratio) == pytest.approx((1.0, 1.0))
    # Slower code on the same machine: the whole change, fast samples included.
    code = process_ratio(base, [[x * 1.3 for x in g] for g in base], machine=(quick, quick))
    assert (code.ratio, code.fast_ratio) == pytest.approx((1.3, 1.3))
    assert classify(code, 0.10)[0] == "regression"
    with pytest.raises(ValueError, match="one machine time per process"):
        process_ratio(base, cand, machine=(quick, slow[:4]))
