from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from seqbench import measure as measure_mod
from seqbench.core.settings import MeasureSettings
from seqbench.core.timing import FakeClock, PerfCounterClock
from seqbench.measure import timed as timed_mod
from seqbench.measure.sampling import sample_times
from seqbench.measure.workload import build_workload
from seqbench.models import expected_params, step_flops
from tests.helpers import FAST, make_cell, measure_cell

PLAIN = MeasureSettings(
    min_time=1e9,
    min_repeats=5,
    max_repeats=7,
    precision=0.0,
    warmup_time=0.0,
    warmup_steps=2,
    min_sample_s=0.0,
)


def counter():
    calls = []
    return calls, lambda: calls.append(1)


def test_warm_up_runs_first_and_is_not_sampled():
    calls, step = counter()
    clock = FakeClock([9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], call=True)
    samples, number = sample_times(step, clock, PLAIN)
    assert samples == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]  # the two 9 s warm-up steps are gone
    assert number == 1
    assert len(calls) == 9


class CoarseClock:
    """A clock that reads whole ticks of 1 ms, timing a step of 0.3 ms (a CUDA event's
    resolution against a tiny kernel): spans shorter than a tick read zero."""

    def __init__(self) -> None:
        self.spans: list[int] = []

    def time(self, fn, number: int) -> float:
        self.spans.append(number)
        return math.floor(number * 0.3) / 1000


def test_a_step_below_the_clocks_resolution_is_never_a_zero_sample():
    # Written, a zero sample made the run's own samples unreadable (not a time in seconds).
    clock = CoarseClock()
    settings = dataclasses.replace(PLAIN, min_time=0.0, min_repeats=5, max_repeats=5)
    samples, number = sample_times(lambda: None, clock, settings)
    assert number == 4 and clock.spans[:4] == [1, 1, 2, 4]  # widened until a tick is seen
    assert samples == [1e-3 / 4] * 5  # per step, and never zero
    never = FakeClock([0.0] * 100)
    with pytest.raises(RuntimeError, match="the clock read no time for 1,048,576 steps"):
        sample_times(lambda: None, never, settings)


def test_sampling_stops_once_the_time_budget_is_spent_and_enough_samples_exist():
    settings = dataclasses.replace(PLAIN, min_time=0.35, min_repeats=3, max_repeats=100)
    samples, _ = sample_times(lambda: None, FakeClock([0.1] * 100), settings)
    assert len(samples) == 4  # 0.1 · 4 >= 0.35


def test_min_repeats_beats_the_time_budget():
    settings = dataclasses.replace(PLAIN, min_time=0.0, min_repeats=6, max_repeats=100)
    samples, _ = sample_times(lambda: None, FakeClock([5.0] * 100), settings)
    assert len(samples) == 6


def test_precision_target_stops_early_when_samples_agree():
    settings = dataclasses.replace(
        PLAIN, min_time=1e9, min_repeats=6, max_repeats=1000, precision=0.01
    )
    steady = [1.0, 1.0] + [1.0] * 5 + [1.001] * 20
    samples, _ = sample_times(lambda: None, FakeClock(steady), settings)
    assert len(samples) == 6
    noisy = [1.0, 1.0] + [1.0, 2.0] * 100
    samples, _ = sample_times(
        lambda: None, FakeClock(noisy), dataclasses.replace(settings, max_repeats=40)
    )
    assert len(samples) == 40  # never precise: runs to the cap


def test_fast_steps_are_batched_so_each_sample_lasts_min_sample_s():
    calls, step = counter()
    settings = dataclasses.replace(PLAIN, min_sample_s=0.001, max_repeats=5)
    clock = FakeClock([0.0002] * 10, call=True)
    samples, number = sample_times(step, clock, settings)
    assert number == 5
    assert samples == [pytest.approx(0.0002)] * 5  # per-step time, not per-sample
    assert len(calls) == 2 + 5 * 5


def test_a_measured_row_reports_statistics_of_the_clock_samples():
    cell = make_cell(arch="gru", mode="train", batch_size=8, seq_len=20)
    durations = [1.0, 1.0] + [0.010, 0.012, 0.011, 0.013, 0.009]
    settings = dataclasses.replace(PLAIN, max_repeats=5)
    result = measure_cell(cell, settings, clock=FakeClock(durations, call=True), memory=False)
    row = result.row
    assert row.status == "ok", row.message
    assert result.samples == durations[2:]
    assert row.median_s == 0.011
    assert row.min_s == 0.009
    assert row.repeats == 5
    assert row.iqr_s == pytest.approx(0.012 - 0.010)
    assert row.seq_per_s == pytest.approx(8 / 0.011)
    assert row.tokens_per_s == pytest.approx(8 * 20 / 0.011)
    assert row.tflops == pytest.approx(step_flops(cell) * 8 / 0.011 / 1e12)
    assert row.params == expected_params(cell)
    assert row.kernel == "aten"


def test_the_machines_reference_is_timed_beside_the_samples_only_across_processes(monkeypatch):
    from seqbench.measure import reference

    blocks = []
    monkeypatch.setattr(reference, "block", lambda: blocks.append(1) or [2e-5, 1e-5, 3e-5, 4e-5])
    cell = make_cell(arch="gru", batch_size=8, seq_len=20)
    durations = [1.0, 1.0] + [0.010, 0.012, 0.011, 0.013, 0.009]
    settings = dataclasses.replace(PLAIN, max_repeats=5, processes=1)
    one = measure_cell(cell, settings, clock=FakeClock(durations, call=True), memory=False)
    assert (one.machine_s, blocks) == (None, [])  # one process: nothing to judge across
    spread = dataclasses.replace(settings, processes=3)
    result = measure_cell(cell, spread, clock=FakeClock(durations, call=True), memory=False)
    assert result.samples == durations[2:]  # the reference's steps are not the cell's
    assert result.row.median_s == 0.011
    assert len(blocks) == 2  # before and after the samples
    assert result.machine_s == pytest.approx(1.75e-5)  # the lower quartile of both blocks
    assert reference.machine_seconds([2e-5, 1e-5], [3e-5, 4e-5]) == pytest.approx(1.75e-5)


def test_the_machines_reference_step_is_a_fixed_positive_time():
    from seqbench.measure import reference

    times = reference.block(seconds=0.0, min_steps=5)
    assert len(times) == 5 and all(t > 0 for t in times)
    assert reference.block(seconds=0.02, min_steps=1)  # a time budget, at least one step


def test_a_training_step_updates_the_weights():
    work = build_workload(make_cell(mode="train"))
    before = [p.detach().clone() for p in work.model.parameters()]
    work.step()
    changed = [not torch.equal(a, b) for a, b in zip(before, work.model.parameters(), strict=True)]
    assert any(changed)
    assert work.optimizer is not None and type(work.optimizer).__name__ == "RMSprop"


def test_inference_runs_without_autograd():
    work = build_workload(make_cell(mode="infer"))
    out = work.step()
    assert out.shape == (4, 1)
    assert not out.requires_grad
    assert not work.model.training


def test_an_inference_cell_builds_no_optimizer_until_it_trains():
    # torch's first optimizer imports torch._dynamo (over a second of a worker's start):
    # a speed cell that only infers never pays it; its train_step still works.
    work = build_workload(make_cell(mode="infer"))
    assert work.optimizer is None
    before = [p.detach().clone() for p in work.model.parameters()]
    work.model.train()
    work.train_step(*work.inputs, torch.zeros(4, 1))
    assert any(not torch.equal(a, b) for a, b in zip(before, work.model.parameters(), strict=True))


def test_a_worker_that_only_infers_never_imports_dynamo(tmp_path):
    # torch's optimizers and torch.profiler.profile import the compiler (over a second
    # each of a worker's first cell): a whole inference cell, its memory profiled, needs
    # neither, and measures the same peak.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tests.helpers import make_cell, measure_cell\n"
        "row = measure_cell(make_cell(mode='infer')).row\n"
        "print(row.status, row.mem_source, row.peak_mem_bytes > 0, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ok", "cpu_profiler", "True", "False"]


def test_the_same_seed_builds_the_same_model_and_inputs():
    a, b = build_workload(make_cell(), seed=3), build_workload(make_cell(), seed=3)
    c = build_workload(make_cell(), seed=4)
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )
    assert torch.equal(a.inputs[0], b.inputs[0])
    assert not torch.equal(a.inputs[0], c.inputs[0])


def test_cpu_peak_memory_counts_resident_tensors_and_grows_with_length():
    short = measure_cell(make_cell(mode="train", seq_len=32, hidden=64), FAST).row
    long = measure_cell(make_cell(mode="train", seq_len=256, hidden=64), FAST).row
    assert short.mem_source == long.mem_source == "cpu_profiler"
    weights = short.params * 4
    assert short.peak_mem_bytes > 2 * weights  # weights, their gradients, RMSprop state...
    # ...and the activations kept for backward, which scale with the length
    assert long.peak_mem_bytes - short.peak_mem_bytes > 0.5 * 4 * 4 * 64 * (256 - 32)


def test_a_cell_on_a_missing_device_is_skipped_with_the_reason():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    row = measure_cell(make_cell(device="cuda"), FAST).row
    assert row.status == "skipped"
    assert row.message.startswith("cuda is not available here")
    assert row.median_s is None


def test_a_too_short_sequence_is_skipped_for_conv1d():
    row = measure_cell(make_cell(arch="conv1d", seq_len=40, layers=2), FAST).row
    assert (row.status, row.message) == ("skipped", "conv1d needs seq_len >= 41")


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "oom"),
        (RuntimeError("bad shapes\nmore"), "error"),
    ],
)
def test_a_failing_cell_becomes_a_row_not_an_exception(monkeypatch, exc, status):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(measure_mod, "build_workload", boom)
    row = measure_cell(make_cell(), FAST).row
    assert row.status == status
    assert "\n" not in row.message
    assert row.message.split(": ", 1)[1] in str(exc)


def test_perf_counter_clock_synchronises_around_the_calls():
    events = []
    clock = PerfCounterClock(sync=lambda: events.append("sync"))
    clock.time(lambda: events.append("step"), 3)
    assert events == ["sync", "step", "step", "step", "sync"]


def test_rounds_pool_their_samples_and_recompute_the_statistics():
    from seqbench.measure.sampling import merge_rounds

    cell = make_cell(batch_size=10)
    five = dataclasses.replace(PLAIN, max_repeats=5)
    first = measure_cell(
        cell, five, clock=FakeClock([9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0]), memory=False
    )
    second = measure_cell(
        cell, five, clock=FakeClock([9.0, 9.0, 6.0, 7.0, 8.0, 9.0, 10.0]), memory=False
    )
    merged = merge_rounds(first, second)
    assert merged.samples == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert (merged.row.rounds, merged.row.repeats, merged.row.median_s) == (2, 10, 5.5)
    assert merged.row.iqr_s == 4.5
    assert merged.row.seq_per_s == pytest.approx(10 / 5.5)


def test_a_failed_round_fails_the_cell():
    from seqbench.core.schema import Measurement, ResultRow
    from seqbench.measure.sampling import merge_rounds

    cell = make_cell()
    ok = measure_cell(cell, PLAIN, clock=FakeClock([1.0] * 20), memory=False)
    failed = Measurement(ResultRow.for_cell(cell, status="timeout", message="too slow"))
    merged = merge_rounds(ok, failed)
    assert (merged.row.status, merged.row.rounds, merged.samples) == ("timeout", 2, [])


def test_each_round_gets_its_share_of_the_budget():
    settings = MeasureSettings(
        min_time=1.5, min_repeats=5, max_repeats=1000, rounds=3, processes=1
    ).per_round()
    assert (settings.min_time, settings.min_repeats, settings.max_repeats) == (0.5, 2, 334)
    assert MeasureSettings(processes=1).per_round() == MeasureSettings(processes=1)


def test_each_process_and_each_of_its_rounds_gets_its_share():
    """Two rounds in each of three processes: six passes, each a sixth of the budget."""
    settings = MeasureSettings(min_time=1.2, min_repeats=12, max_repeats=600, rounds=2, processes=3)
    assert settings.passes == 6
    share = settings.per_round()
    assert (share.min_time, share.min_repeats, share.max_repeats) == (pytest.approx(0.2), 2, 100)


def test_page_faults_per_step_are_the_faults_over_the_timed_steps(monkeypatch):
    # Read before and after sampling: 60 faults over 5 samples of 2 steps each.
    counts = iter([1000, 1060])
    monkeypatch.setattr(timed_mod, "minor_faults", lambda: next(counts))
    settings = dataclasses.replace(PLAIN, max_repeats=5, min_sample_s=2.0)
    clock = FakeClock([1.0] * 2 + [1.0] * 5)  # warm-up says 1 s a step: 2 steps a sample
    row = measure_cell(make_cell(), settings, clock=clock, memory=False).row
    assert (row.inner_loops, row.repeats) == (2, 5)
    assert row.faults_per_step == 6.0


def test_the_table_warns_when_steps_fault_in_fresh_memory():
    from seqbench.core.schema import ResultRow
    from seqbench.output.tables import format_table

    quiet = ResultRow.for_cell(make_cell(), median_s=0.001, faults_per_step=3.0)
    faulting = ResultRow.for_cell(make_cell(arch="gru"), median_s=0.001, faults_per_step=8000.0)
    assert format_table([quiet]).notes == []
    (note,) = format_table([quiet, faulting]).notes
    assert (
        "1 cell maps fresh memory" in note and "8,000 page faults" in note and "--isolate" in note
    )
