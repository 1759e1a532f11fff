"""The change-point method on synthetic series whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from seqbench.judge.changepoints import Settings, find_change_points, noise_scale, segment


def noisy(levels: np.ndarray, sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return levels * np.exp(rng.normal(0.0, sd, len(levels)))


def two_steps(n: int = 50) -> np.ndarray:
    levels = np.full(n, 2e-3)
    levels[20:] *= 1.15
    levels[35:] *= 0.90
    return levels


@pytest.mark.parametrize("seed", range(5))
def test_two_known_steps_are_found_where_they_are_with_their_sizes(seed):
    found = find_change_points(noisy(two_steps(), 0.03, seed))
    assert [s.index for s in found.steps] == [20, 35]
    up, down = found.steps
    assert up.ratio == pytest.approx(1.15, abs=0.03) and down.ratio == pytest.approx(0.9, abs=0.03)
    assert up.ci_low < up.ratio < up.ci_high and up.ci_high - up.ci_low < 0.08
    assert up.p_value < 0.01 and down.p_value < 0.01
    assert (up.before, up.after, down.before, down.after) == (20, 15, 15, 15)
    assert up.earliest <= 20 <= up.latest
    assert [(s.start, s.end) for s in found.segments] == [(0, 20), (20, 35), (35, 50)]


def test_noiseless_steps_are_exact():
    found = find_change_points(two_steps())
    assert [s.index for s in found.steps] == [20, 35]
    assert found.steps[0].ratio == pytest.approx(1.15)
    assert found.steps[1].ratio == pytest.approx(0.90)
    assert found.noise == pytest.approx(1e-3)  # the floor: no noise at all


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_has_no_steps(seed):
    found = find_change_points(noisy(np.full(50, 1e-3), 0.04, seed))
    assert found.steps == []
    assert len(found.segments) == 1


@pytest.mark.parametrize("where", [0, 25, 49])
def test_one_outlier_is_not_a_step(where):
    values = noisy(np.full(50, 1e-3), 0.03, 7)
    values[where] *= 1.8
    found = find_change_points(values)
    assert found.steps == []


def test_two_outliers_in_a_row_are_not_a_level_either():
    values = noisy(np.full(50, 1e-3), 0.03, 8)
    values[30:32] *= 1.6  # fewer than min_size runs: not a level of their own
    assert find_change_points(values).steps == []


@pytest.mark.parametrize("seed", range(3))
def test_a_slow_drift_is_reported_as_drift_not_as_steps(seed):
    levels = 1e-3 * np.exp(np.linspace(0, np.log(1.25), 50))  # +25% over 50 runs
    found = find_change_points(noisy(levels, 0.02, seed))
    assert found.steps == []
    (drift,) = found.drifts
    assert (drift.start, drift.end) == (0, 50)
    assert drift.ci_low <= 1.25 <= drift.ci_high


def test_a_step_smaller_than_min_step_is_not_reported():
    levels = np.full(40, 1e-3)
    levels[20:] *= 1.04
    values = noisy(levels, 0.005, 1)
    assert find_change_points(values).steps == []
    (step,) = find_change_points(values, Settings(min_step=0.02)).steps
    assert step.index == 20


def test_a_new_level_needs_min_size_runs():
    levels = np.full(30, 1e-3)
    levels[28:] *= 1.5  # two runs on the new level: could be two outliers
    assert find_change_points(noisy(levels, 0.02, 3)).steps == []
    levels[27:] *= 1.5  # three
    (step,) = find_change_points(noisy(levels, 0.02, 3)).steps
    assert step.index == 27 and step.slower


def test_short_series_have_no_steps_and_bad_values_are_refused():
    assert find_change_points([1.0, 2.0, 4.0]).steps == []
    assert find_change_points([]).steps == []
    with pytest.raises(ValueError):
        find_change_points([1.0, 0.0, 1.0])


def test_the_noise_scale_ignores_steps_and_outliers():
    values = np.log(noisy(two_steps(200), 0.04, 11))
    values[50] += 1.0
    assert noise_scale(values) == pytest.approx(0.04, rel=0.2)


def test_the_segmentation_is_the_exact_optimum_on_a_tiny_case():
    logs = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    assert segment(logs, 0.1, 1.0, 3) == [3]
    assert segment(logs, 0.1, 100.0, 3) == []  # too dear a change point
