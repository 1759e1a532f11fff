"""Power-law fits, crossovers and anomalies on synthetic rows whose answers are known."""

from __future__ import annotations

import dataclasses
import random

import pytest

from seqbench.core.schema import ResultRow
from seqbench.judge.scaling import (
    ANOMALY_FACTOR,
    compute_anomalies,
    compute_crossovers,
    compute_exponent_gap,
    compute_fits,
    compute_pareto,
    compute_scaling,
    fit_power_law,
)
from seqbench.output.scaling import (
    format_anomaly_hint,
    format_crossover,
    format_exponent_hint,
    format_step,
)
from tests.helpers import make_cell, power_rows

LENGTHS = [32, 64, 128, 256, 512]


def scaled(rows, factor, from_length, column="median_s"):
    """The rows with `column` multiplied by `factor` from `from_length` on: a planted cliff."""
    return [
        dataclasses.replace(r, **{column: getattr(r, column) * factor})
        if r.seq_len >= from_length
        else r
        for r in rows
    ]


@pytest.mark.parametrize("k", [1.0, 2.0, 0.5, 1.37])
def test_the_fit_recovers_a_known_exponent_to_rounding_error(k):
    (fit,) = compute_fits(power_rows("lstm", LENGTHS, time_k=k), "median_s")
    assert abs(fit.exponent - k) < 1e-9
    assert abs(fit.law.coefficient - 1e-5) < 1e-15
    assert fit.lengths == tuple(LENGTHS)


def test_time_and_memory_are_fitted_apart():
    scaling = compute_scaling(power_rows("rnn", LENGTHS, time_k=1.0, mem_k=2.0))
    (key,) = scaling.keys
    assert abs(scaling.fit("median_s", key).exponent - 1.0) < 1e-9
    assert abs(scaling.fit("peak_mem_bytes", key).exponent - 2.0) < 1e-6  # bytes are rounded


def test_each_model_and_mode_is_its_own_series():
    rows = power_rows("rnn", LENGTHS, 1.0) + power_rows("rnn", LENGTHS, 2.0, mode="train")
    fits = compute_fits(rows, "median_s")
    assert [(f.key.mode, round(f.exponent, 9)) for f in fits] == [("infer", 1.0), ("train", 2.0)]


def test_a_series_with_fewer_than_three_lengths_gets_no_fit():
    assert compute_fits(power_rows("rnn", [64, 128], 1.0), "median_s") == []


def test_cells_that_were_not_measured_are_left_out_of_the_fit():
    rows = power_rows("gru", LENGTHS, 1.0)
    rows[-1] = ResultRow.for_cell(rows[-1].cell, status="oom", message="out of memory")
    (fit,) = compute_fits(rows, "median_s")
    assert fit.lengths == (32, 64, 128, 256)
    assert abs(fit.exponent - 1.0) < 1e-9


def test_a_power_law_needs_positive_values_and_two_lengths():
    with pytest.raises(ValueError):
        fit_power_law([64, 64], [1.0, 2.0])
    with pytest.raises(ValueError):
        fit_power_law([64, 128], [1.0, 0.0])


def test_two_power_laws_cross_where_they_are_equal():
    # 1e-3·T and 1e-5·T² are equal at T = 100; the quadratic is cheaper below it.
    linear = power_rows("lstm", [25, 50, 100, 200, 400], 1.0, scale=1e-3)
    quadratic = power_rows("conv1d", [25, 50, 100, 200, 400], 2.0, scale=1e-5, layers=2)
    (crossing,) = compute_crossovers(compute_fits(linear + quadratic, "median_s"))
    assert abs(crossing.length - 100) < 1e-9
    assert (crossing.below.arch, crossing.above.arch) == ("conv1d", "lstm")
    assert format_crossover(crossing) == "conv1d is faster than lstm below T≈100, lstm above"


def test_models_matched_to_equal_parameters_are_compared_whatever_their_widths():
    # --match-params gives each model its own width; the target is what they share
    linear = power_rows("lstm", [25, 50, 100, 200, 400], 1.0, scale=1e-3, hidden=96)
    quadratic = power_rows("transformer-causal", [25, 50, 100, 200, 400], 2.0, scale=1e-5)
    matched = [dataclasses.replace(r, match_params=50_000) for r in linear + quadratic]
    (crossing,) = compute_crossovers(compute_fits(matched, "median_s"))
    assert abs(crossing.length - 100) < 1e-9
    # without a parameter target, different widths are different experiments
    assert compute_crossovers(compute_fits(linear + quadratic, "median_s")) == []


def test_curves_that_cross_outside_the_measured_lengths_are_not_reported():
    linear = power_rows("lstm", [200, 400, 800], 1.0, scale=1e-3)
    quadratic = power_rows("gru", [200, 400, 800], 2.0, scale=1e-5)
    assert compute_crossovers(compute_fits(linear + quadratic, "median_s")) == []


def test_models_in_different_modes_or_batches_are_never_compared():
    linear = power_rows("lstm", [25, 50, 100, 200, 400], 1.0, scale=1e-3, mode="train")
    quadratic = power_rows("gru", [25, 50, 100, 200, 400], 2.0, scale=1e-5)
    other_batch = power_rows("rnn", [25, 50, 100, 200, 400], 2.0, scale=1e-5, batch_size=8)
    fits = compute_fits(linear + quadratic + other_batch, "median_s")
    assert compute_crossovers(fits) == []


def test_a_planted_30x_cliff_is_an_anomaly_at_the_right_step():
    rows = scaled(power_rows("lstm", LENGTHS, 1.0), 30.0, from_length=256)
    (anomaly,) = compute_anomalies(compute_fits(rows, "median_s"))
    assert (anomaly.before, anomaly.after) == (128, 256)
    assert abs(anomaly.observed - 60.0) < 1e-9  # twice the length, 30× the cost per step
    assert anomaly.is_jump and anomaly.ratio > ANOMALY_FACTOR


@pytest.mark.parametrize("lengths", [[64, 128, 256], [32, 64, 128, 256, 512, 1024]])
@pytest.mark.parametrize("where", [0, 1, -1])
def test_a_30x_cliff_is_found_wherever_it_stands_and_however_few_lengths(lengths, where):
    step = list(range(1, len(lengths)))[where]
    rows = scaled(power_rows("lstm", lengths, 1.0), 30.0, from_length=lengths[step])
    (anomaly,) = compute_anomalies(compute_fits(rows, "median_s"))
    assert (anomaly.before, anomaly.after) == (lengths[step - 1], lengths[step])


def test_a_smooth_series_has_no_anomaly():
    # Fixed overhead giving way to linear growth, and linear giving way to quadratic: bends,
    # not steps.
    bends = [
        [ResultRow.for_cell(make_cell(seq_len=t), median_s=2e-3 + 1e-6 * t) for t in LENGTHS],
        [
            ResultRow.for_cell(make_cell(seq_len=t), median_s=1e-4 * t + 1e-7 * t * t)
            for t in LENGTHS
        ],
        power_rows("gru", LENGTHS, 2.0),
    ]
    for rows in bends:
        assert compute_anomalies(compute_fits(rows, "median_s")) == []


def test_noisy_but_smooth_series_have_no_anomaly():
    rng = random.Random(0)
    rows = []
    for i in range(50):
        for r in power_rows("lstm", LENGTHS, rng.uniform(0.5, 2.0), hidden=i + 1):
            rows.append(dataclasses.replace(r, median_s=r.median_s * rng.uniform(0.95, 1.05)))
    fits = compute_fits(rows, "median_s")
    assert len(fits) == 50
    assert compute_anomalies(fits) == []


def test_a_longer_sequence_costing_less_than_half_is_flagged_as_a_drop():
    rows = power_rows("rnn", LENGTHS, 1.0)
    rows[0] = dataclasses.replace(rows[0], median_s=rows[1].median_s * 2.9)  # a disturbed cell
    (anomaly,) = compute_anomalies(compute_fits(rows, "median_s"))
    assert (anomaly.before, anomaly.after, anomaly.is_jump) == (32, 64, False)
    assert "one end was likely disturbed" in format_anomaly_hint(anomaly)


def test_a_flat_noisy_series_has_no_drop():
    # Cost that does not grow at all (overhead-bound), with ±5% noise: 20 series.
    rng = random.Random(1)
    rows = [
        dataclasses.replace(r, median_s=r.median_s * rng.uniform(0.95, 1.05))
        for hidden in range(1, 21)
        for r in power_rows("conv1d", LENGTHS, 0.0, layers=2, hidden=hidden)
    ]
    assert len(compute_fits(rows, "median_s")) == 20
    assert compute_anomalies(compute_fits(rows, "median_s")) == []


def test_the_hint_for_a_time_cliff_names_the_subnormal_setting_of_the_run():
    rows = scaled(power_rows("lstm", LENGTHS, 1.0), 30.0, from_length=256)
    (anomaly,) = compute_anomalies(compute_fits(rows, "median_s"))
    assert format_step(anomaly) == "time ×60 at 128→256"
    kept = format_anomaly_hint(anomaly, flush_denormal=False)
    assert kept.startswith("time ×60 from T=128 to T=256, where the fit expects ×")
    assert kept.endswith("rerun with --flush-denormal to tell")
    assert "not subnormals" in format_anomaly_hint(anomaly, flush_denormal=True)


def test_a_kernel_change_at_the_cliff_is_named():
    rows = scaled(power_rows("lstm", LENGTHS, 1.0), 30.0, from_length=256)
    rows = [dataclasses.replace(r, kernel="onednn" if r.seq_len < 256 else "aten") for r in rows]
    (anomaly,) = compute_anomalies(compute_fits(rows, "median_s"))
    assert "the kernel changes (onednn → aten)" in format_anomaly_hint(anomaly)


def test_an_exponent_far_from_the_family_is_measured_against_it():
    (slow,) = compute_fits(power_rows("lstm", LENGTHS, 0.5), "median_s")
    (near,) = compute_fits(power_rows("lstm", LENGTHS, 1.2), "median_s")
    (custom,) = compute_fits(power_rows("mine.models:core", LENGTHS, 3.0), "median_s")
    assert abs(compute_exponent_gap(slow) + 0.5) < 1e-9
    assert compute_exponent_gap(near) is None
    assert compute_exponent_gap(custom) is None  # no family, no expectation


def test_a_named_variant_is_held_to_its_familys_exponent():
    (causal,) = compute_fits(power_rows("transformer-causal", LENGTHS, 1.2), "median_s")
    assert abs(compute_exponent_gap(causal) + 0.8) < 1e-9  # against T^2
    assert format_exponent_hint(-0.8, 2.0).startswith(
        "time grows slower than the T^2 this family predicts: terms that grow more slowly "
        "still dominate"
    )


def test_the_pareto_frontier_keeps_what_nothing_cheaper_beats():
    # (cost, accuracy): the third point costs more than the second and scores less.
    points = [(1.0, 0.6), (2.0, 0.8), (3.0, 0.7), (4.0, 0.9), (0.5, 0.5)]
    assert compute_pareto(points) == [4, 0, 1, 3]
    assert compute_pareto([(1.0, 0.3), (2.0, 0.1)], higher_is_better=False) == [0, 1]
