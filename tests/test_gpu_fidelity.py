"""CUDA measurement, tested on the CPU as far as it can be (fakes and mocks), and for real
where a GPU is present (marked `gpu`, skipped without one)."""

from __future__ import annotations

import json

import pytest
import torch

from seqbench.cli import app
from seqbench.core import timing
from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import Measurement, ResultRow
from seqbench.core.settings import MeasureSettings
from seqbench.core.timing import FakeClock
from seqbench.machine import env as env_mod
from seqbench.measure.ceiling import measure_ceiling
from seqbench.plan.frontier import Probe, parse_bytes, search, summarize
from seqbench.storage import load_run
from tests.helpers import FAST, FAST_FLAGS, make_cell, measure_cell

# --------------------------------------------------------------------------- CUDA events, faked


class FakeEvent:
    """Stands in for torch.cuda.Event: each record() reads a scripted device clock (ms)."""

    clock_ms: list[float] = []

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at = None

    def record(self) -> None:
        self.at = FakeEvent.clock_ms.pop(0)

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: FakeEvent) -> float:
        return end.at - self.at


def test_cuda_events_time_the_calls_between_them_in_seconds(monkeypatch):
    syncs = []
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: syncs.append(device))
    FakeEvent.clock_ms = [100.0, 112.5]
    calls = []
    clock = timing.CudaEventClock(torch.device("cuda:0"))
    assert clock.time(lambda: calls.append(1), 5) == pytest.approx(0.0125)
    assert len(calls) == 5
    assert syncs == [torch.device("cuda:0")]  # earlier work drained before the start event


def test_a_cuda_device_gets_the_event_clock():
    assert isinstance(timing.clock_for(torch.device("cuda")), timing.CudaEventClock)
    assert isinstance(timing.clock_for(torch.device("cpu")), timing.PerfCounterClock)


# --------------------------------------------------------------------------- device metadata, mocked


class Props:
    name = "NVIDIA H200"
    major, minor = 9, 0
    total_memory = 150_000_000_000
    multi_processor_count = 132


def test_gpu_metadata_comes_from_torch_and_nvidia_smi(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    class Done:
        stdout = "570.86.15, 1980 MHz, 1980 MHz, 2619 MHz, 700.00 W, 41\n"

    monkeypatch.setattr(env_mod.subprocess, "run", lambda *a, **k: Done())
    info = env_mod.gpu_info("cuda")
    assert info == {
        "name": "NVIDIA H200",
        "capability": "9.0",
        "memory_bytes": 150_000_000_000,
        "multiprocessors": 132,
        "driver_version": "570.86.15",
        "clocks.sm": "1980 MHz",
        "clocks.max.sm": "1980 MHz",
        "clocks.mem": "2619 MHz",
        "power.limit": "700.00 W",
        "temperature.gpu": "41",
    }


def test_gpu_metadata_without_nvidia_smi_keeps_what_torch_knows(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(env_mod.subprocess, "run", missing)
    assert env_mod.gpu_info("cuda:0")["capability"] == "9.0"


def test_tf32_is_set_for_matmuls_and_cudnn_and_recorded():
    try:
        settings = env_mod.apply_process_settings(None, True, tf32=False)
        assert settings["tf32"] is False
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert env_mod.apply_process_settings(None, True, tf32=True)["tf32"] is True
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        env_mod.apply_process_settings(None, True, tf32=True)
    assert "tf32" in env_mod.COMPARED_KEYS


# --------------------------------------------------------------------------- ceiling and mfu


def test_the_ceiling_is_the_fastest_matmul_rate():
    durations = [1.0, 1.0] + [0.004, 0.002, 0.003, 0.005, 0.004] + [0.004] * 200
    tflops = measure_ceiling("cpu", "float32", clock=FakeClock(durations), size=100)
    assert tflops == pytest.approx(2 * 100**3 / 0.002 / 1e12)


def test_rows_carry_mfu_against_the_runs_ceiling(cli, tmp_path):
    flags = [f for f in FAST_FLAGS if f != "--no-ceiling"]
    result = cli.invoke(
        app,
        [
            "run",
            "--out",
            str(tmp_path),
            "--arch",
            "conv1d",
            "--seq-len",
            "64",
            "--mode",
            "infer",
            *flags,
        ],
    )
    assert result.exit_code == 0, result.output
    run = load_run("latest", tmp_path)
    ceiling = run.meta.ceilings["cpu/float32"]
    (row,) = run.rows
    assert ceiling > 0
    if "cpu/float32" in run.meta.ceilings_noisy:  # a busy machine: MFU withheld, not flattered
        assert row.mfu is None
    else:
        assert row.mfu == pytest.approx(row.tflops / ceiling)
        assert "MFU" in result.stdout


# --------------------------------------------------------------------------- compile and precision


def test_compile_time_is_reported_apart_from_the_timing(cli, tmp_path):
    args = ["run", "--out", str(tmp_path), "--arch", "gru", "--seq-len", "16", "--mode", "train",
            "--compile", "--compile-backend", "eager", *FAST_FLAGS]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = load_run("latest", tmp_path).rows
    assert row.compile and row.cell_id.endswith("-compiled")
    assert row.compile_s > 0 and row.kernel_note == "compiled (eager)"
    assert row.median_s < row.compile_s  # the compiling call is not among the samples


def test_cpu_rows_do_not_claim_tf32():
    row = measure_cell(make_cell(), FAST).row
    assert row.tf32 is None and row.peak_reserved_bytes is None


# --------------------------------------------------------------------------- the memory frontier


def probe_below(threshold: int, seen: list[int]):
    def probe(length: int) -> Probe:
        seen.append(length)
        status = "ok" if length <= threshold else "oom"
        row = ResultRow.for_cell(make_cell(seq_len=length), status=status)
        return Probe(length, length <= threshold, Measurement(row))

    return probe


@pytest.mark.parametrize("threshold", [1, 99, 100, 1234, 5000])
def test_bisection_finds_the_exact_frontier(threshold):
    seen: list[int] = []
    result = summarize(list(search(probe_below(threshold, seen), start=64, max_len=10**6)))
    assert (result.largest, result.smallest_failing) == (threshold, threshold + 1)
    assert len(seen) == len(set(seen))  # no length probed twice
    assert len(seen) <= 2 * 20


def test_a_tolerance_stops_the_bisection_early():
    seen: list[int] = []
    result = summarize(
        list(search(probe_below(10_000, seen), start=64, max_len=10**6, tolerance=0.05))
    )
    assert result.largest <= 10_000 < result.smallest_failing
    assert result.smallest_failing - result.largest <= 0.05 * result.largest


def test_the_frontier_stops_at_max_len_and_when_nothing_fits():
    at_cap = summarize(list(search(probe_below(10**9, []), start=64, max_len=1000)))
    assert (at_cap.largest, at_cap.smallest_failing) == (1000, None)
    nothing = summarize(list(search(probe_below(0, []), start=64, max_len=1000)))
    assert (nothing.largest, nothing.smallest_failing) == (None, 1)


@pytest.mark.parametrize(
    ("text", "value"),
    [("2GiB", 2 * 2**30), ("500MB", 500 * 10**6), ("1e9", 10**9), ("64 KiB", 65536)],
)
def test_memory_limits_parse(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["lots", "-5GB", "3 parsecs", "0"])
def test_bad_memory_limits_are_refused(text):
    with pytest.raises(SeqbenchError, match="--mem-limit"):
        parse_bytes(text)


def test_the_frontier_of_an_architecture_whose_memory_runs_out_at_100_steps(cli, tmp_path):
    args = ["frontier", "--arch", "tests.fault_archs:oom", "--device", "cpu", "--mem-limit", "1GiB",
            "--no-isolate", "--tolerance", "0", "--start", "64", "--batch-size", "2", "--out", str(tmp_path)]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = load_run("latest", tmp_path)
    assert run.meta.frontier["tests.fault_archs:oom"]["largest"] == 99
    assert run.meta.frontier["tests.fault_archs:oom"]["smallest_failing"] == 100
    assert {r.status for r in run.rows} == {"ok", "oom"}
    assert " 99 " in result.stdout


def test_a_memory_limit_on_the_cpu_is_a_frontier_of_measured_peaks(cli, tmp_path):
    # Inference: its peak grows by ~1.8 KB per step of T and is the same in every run. A
    # training step's peak at this size is bimodal (with or without a 1.28 MB temporary the
    # size of the embedding's gradient, from run to run: see the closing note of issue 15),
    # and a 6 MB limit between the two modes made the frontier a coin toss.
    args = ["frontier", "--arch", "gru", "--device", "cpu", "--mem-limit", "2MB", "--no-isolate",
            "--tolerance", "0", "--start", "16", "--batch-size", "4", "--hidden", "16",
            "--mode", "infer", "--out", str(tmp_path)]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = load_run("latest", tmp_path)
    frontier = run.meta.frontier["gru"]
    peaks = {r.seq_len: r.peak_mem_bytes for r in run.rows}
    assert frontier["largest"] is not None, peaks

    assert peaks[frontier["largest"]] <= 2_000_000 < peaks[frontier["smallest_failing"]]
    assert frontier["smallest_failing"] == frontier["largest"] + 1


def test_the_cpu_frontier_needs_a_memory_limit(cli, tmp_path):
    result = cli.invoke(
        app, ["frontier", "--arch", "gru", "--device", "cpu", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "give --mem-limit" in result.stderr


@pytest.mark.slow
def test_isolated_probes_find_the_same_frontier(cli, tmp_path):
    args = ["frontier", "--arch", "tests.fault_archs:oom", "--device", "cpu", "--mem-limit", "1GiB",
            "--tolerance", "0", "--start", "96", "--batch-size", "2", "--out", str(tmp_path)]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert load_run("latest", tmp_path).meta.frontier["tests.fault_archs:oom"]["largest"] == 99


# --------------------------------------------------------------------------- on a real GPU


@pytest.mark.gpu
def test_a_cuda_cell_reports_events_memory_and_provenance():
    cell = make_cell(device="cuda", arch="lstm", mode="train", seq_len=64, batch_size=8)
    row = measure_cell(cell, MeasureSettings(min_time=0.05, min_repeats=5)).row
    assert row.status == "ok", row.message
    assert row.kernel == "cudnn"
    assert row.mem_source == "cuda_max_allocated" and row.peak_mem_bytes > 0
    assert row.peak_reserved_bytes >= row.peak_mem_bytes
    assert row.tf32 is not None


@pytest.mark.gpu
def test_a_cuda_ceiling_is_plausible():
    tflops = measure_ceiling("cuda", "bfloat16")
    assert 1 < tflops < 5000


def test_meta_json_is_valid_after_a_frontier(tmp_path, cli):
    args = ["frontier", "--arch", "rnn", "--device", "cpu", "--mem-limit", "2MB", "--no-isolate",
            "--start", "8", "--batch-size", "2", "--hidden", "8", "--out", str(tmp_path)]  # fmt: skip
    assert cli.invoke(app, args).exit_code == 0
    (folder,) = list(tmp_path.iterdir())
    assert json.loads((folder / "meta.json").read_text())["state"] == "complete"


@pytest.mark.slow
def test_the_gpu_check_script_runs_dry_on_the_cpu(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    done = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--lengths", "16", "--min-time", "0", "--checks", "2",
         "--steps", "3", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "time ratios" in done.stdout and "seqbench" in done.stdout
