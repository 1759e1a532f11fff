"""Noise readings on fake /proc and /sys trees, the flagging rule on fixed rows, the machine
check, and how seqbench chooses its threads on a busy machine."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import pytest

from seqbench.core.schema import ResultRow
from seqbench.judge import noise
from seqbench.judge.noise import findings, flag, noise_advice, slowdown_bound
from seqbench.machine import look, system
from seqbench.machine.look import Machine, checks
from seqbench.machine.system import Counters, interference
from tests.helpers import make_cell


def test_a_running_child_the_look_owns_is_its_own_work(tmp_path):
    # `seqbench run` starts its first worker while it looks at the machine: the worker's
    # import is this command's own work, read from /proc while it runs (not yet waited for).
    import subprocess
    import sys

    burn = (
        "import sys, time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.3: pass\nprint(flush=True)\nsys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        before = system.read_counters(children=True)
        child.stdout.readline()  # it has burnt its 0.3 s and waits, alive
        plain = system.read_counters(children=True).cpu_s - before.cpu_s
        owned = system.read_counters(children=True, running=(child.pid,)).cpu_s - before.cpu_s
        assert plain < 0.25 <= owned
    finally:
        child.communicate("")
    # A name with spaces and a parenthesis, as /proc writes it: utime and stime are the
    # 14th and 15th fields, in clock ticks.
    stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 1 0 5 0 0\n"
    root = fake_root(tmp_path, {"proc/42/stat": stat})
    hz = system._ticks_per_second()
    assert system.process_cpu_s(42, root) == pytest.approx(300 / hz)
    assert system.process_cpu_s(43, root) == 0.0  # gone


class FrozenWatch:
    """A stopwatch that reads a fixed elapsed time (the counters' timestamps)."""

    def __init__(self, elapsed: float) -> None:
        self._elapsed = elapsed

    def elapsed(self) -> float:
        return self._elapsed


def counters(at: float, **values) -> Counters:
    base = dict(cpu_s=0.0, involuntary=0, busy_ticks=0, steal_ticks=0, total_ticks=0,
                throttled_s=0.0, load1=1.0)  # fmt: skip
    return Counters(watch=FrozenWatch(at), **{**base, **values})


def fake_root(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_interference_is_the_difference_of_the_counters_over_the_samples(tmp_path):
    # Read 2 s apart (the first watch has run 2 s longer): 100 ticks a second.
    before = counters(5.0, cpu_s=10.0, involuntary=7, busy_ticks=1000, steal_ticks=50,
                      total_ticks=4000, throttled_s=1.0, load1=0.5)  # fmt: skip
    after = counters(3.0, cpu_s=11.5, involuntary=47, busy_ticks=1450, steal_ticks=70,
                     total_ticks=4400, throttled_s=1.1, load1=2.5)  # fmt: skip
    seen = interference(before, after, threads=2, steps=20, root=tmp_path, ticks_per_s=100)
    assert seen["load_before"] == 0.5 and seen["load_after"] == 2.5
    assert seen["cpu_share"] == pytest.approx(1.5 / (2.0 * 2))
    assert seen["ctx_switches_per_step"] == 2.0  # 40 over 20 steps
    # 450 busy ticks = 4.5 CPU-seconds, 1.5 of them this process's, over 2 s of wall time.
    assert seen["others_cores"] == pytest.approx(1.5)
    assert seen["steal_frac"] == pytest.approx(20 / 400)
    assert seen["throttled_frac"] == pytest.approx(0.05)
    assert seen["cpu_mhz"] is None  # the fake root has no cpuinfo


def test_readings_the_system_does_not_offer_stay_unknown(tmp_path):
    before = counters(2.0, busy_ticks=None, steal_ticks=None, total_ticks=None, throttled_s=None)
    after = counters(1.0, busy_ticks=None, steal_ticks=None, total_ticks=None, throttled_s=None)
    seen = interference(before, after, threads=1, steps=1, root=tmp_path)
    assert seen["others_cores"] is None and seen["steal_frac"] is None
    assert seen["throttled_frac"] is None


def test_proc_stat_is_read_for_this_process_cpus_only(tmp_path):
    root = fake_root(tmp_path, {"proc/stat": (
        "cpu  999 0 999 999 0 0 0 0 0 0\n"
        "cpu0 10 1 2 100 4 1 1 3 0 0\n"
        "cpu1 20 0 4 200 0 0 0 5 0 0\n"
        "cpu2 500 0 0 0 0 0 0 0 0 0\n"
        "intr 1 2 3\n"
    )})  # fmt: skip
    assert system.cpu_ticks(root, {0, 1}) == (10 + 1 + 2 + 1 + 1 + 20 + 4, 3 + 5, 122 + 229)
    assert system.cpu_ticks(root, None)[0] == 39 + 500
    assert system.cpu_ticks(tmp_path / "nowhere", {0}) is None


@pytest.mark.parametrize(
    ("files", "quota", "throttled"),
    [
        ({"proc/self/cgroup": "0::/jobs/x\n", "sys/fs/cgroup/jobs/x/cpu.max": "150000 100000\n",
          "sys/fs/cgroup/jobs/x/cpu.stat": "usage_usec 9\nthrottled_usec 2500000\n"}, 1.5, 2.5),
        ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"}, None, None),
        ({"proc/self/cgroup": "4:cpu,cpuacct:/docker/y\n",
          "sys/fs/cgroup/cpu/docker/y/cpu.cfs_quota_us": "200000\n",
          "sys/fs/cgroup/cpu/docker/y/cpu.cfs_period_us": "100000\n",
          "sys/fs/cgroup/cpu/docker/y/cpu.stat": "nr_throttled 3\nthrottled_time 750000000\n"},
         2.0, 0.75),
        ({"proc/self/cgroup": "4:cpu:/\n", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
          "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, None, None),
    ],
    ids=["v2-quota", "v2-none", "v1-quota", "v1-none"],
)  # fmt: skip
def test_cgroup_quota_and_throttling_are_read_from_v1_and_v2(tmp_path, files, quota, throttled):
    root = fake_root(tmp_path, files)
    assert system.cpu_quota(root) == quota
    assert system.throttled_seconds(root) == throttled


def test_a_quota_caps_the_usable_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(system, "affinity", lambda: {0, 1, 2, 3})
    root = fake_root(
        tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "150000 100000"}
    )
    assert system.usable_cpus(root) == 1.5
    assert system.usable_cpus(tmp_path / "none") == 4.0


def test_clock_governor_and_turbo_come_from_cpufreq(tmp_path):
    base = "sys/devices/system/cpu"
    root = fake_root(tmp_path, {
        f"{base}/cpu0/cpufreq/scaling_cur_freq": "2000000\n",
        f"{base}/cpu1/cpufreq/scaling_cur_freq": "3000000\n",
        f"{base}/cpu0/cpufreq/scaling_governor": "powersave\n",
        f"{base}/cpu1/cpufreq/scaling_governor": "performance\n",
        f"{base}/intel_pstate/no_turbo": "1\n",
        "proc/cpuinfo": "cpu MHz\t\t: 1234.5\n",
    })  # fmt: skip
    assert system.cpu_mhz(root, {0, 1}) == 2500.0
    assert system.cpu_mhz(root, {7}) == 1234.5  # no cpufreq for cpu7: /proc/cpuinfo
    assert system.governors(root, {0, 1}) == {"powersave", "performance"}
    assert system.turbo(root) is False
    assert system.turbo(tmp_path / "none") is None


def row(device: str = "cpu", **values) -> ResultRow:
    base = dict(median_s=1.0, ci_low_s=0.98, ci_high_s=1.02, threads=2, cpus=2.0,
                others_cores=0.05, steal_frac=0.0, throttled_frac=0.0)  # fmt: skip
    return ResultRow.for_cell(make_cell(device=device), **{**base, **values})


def test_a_quiet_narrow_cell_is_not_flagged():
    assert flag(row()) == "" and findings(row()) == []


def test_a_wide_interval_is_flagged_with_its_width():
    (reason,) = findings(row(ci_low_s=0.8, ci_high_s=1.3))
    assert reason == ("CI ±25%", "its interval is ±25%, wider than ±10%")
    assert findings(row(ci_low_s=0.91, ci_high_s=1.09)) == []  # ±9% passes


@pytest.mark.parametrize(
    ("threads", "others", "cpus", "flagged"),
    [(2, 0.3, 2.0, True), (2, 0.2, 2.0, False), (1, 1.0, 2.0, False), (1, 1.3, 2.0, True),
     (4, 3.0, 8.0, False), (8, 1.0, 8.0, True)],
)  # fmt: skip
def test_a_cell_is_contended_when_its_threads_and_other_work_outgrow_the_cpus(
    threads, others, cpus, flagged
):
    found = findings(row(threads=threads, others_cores=others, cpus=cpus))
    assert bool(found) is flagged
    if flagged:
        plural = "s" if threads > 1 else ""
        assert found[0][1] == (
            f"its {threads} thread{plural} shared {cpus:g} CPUs with {others:.1f} cores of other work"
        )


def test_a_gpu_cell_is_judged_with_one_host_thread():
    assert flag(row(threads=2, others_cores=1.0, device="cuda")) == ""
    assert flag(row(threads=2, others_cores=1.0)) != ""


def test_the_slowdown_other_work_could_cause_is_bounded_for_one_thread_only():
    assert slowdown_bound(row()) == 1.0  # undisturbed
    assert slowdown_bound(row(threads=1, others_cores=1.4)) == pytest.approx(1.2)  # 2.4 / 2
    # The CPU time the process got says more where it got less than its fair share.
    assert slowdown_bound(row(threads=1, others_cores=1.4, cpu_share=0.5)) == pytest.approx(2.0)
    assert slowdown_bound(row(threads=2, others_cores=0.5)) == math.inf  # threads wait
    assert slowdown_bound(row(threads=1, others_cores=0.0, steal_frac=0.2)) == pytest.approx(1.25)


def test_the_advice_names_what_steadies_the_noisy_cells():
    contended = row(threads=2, others_cores=1.0, noisy="x")
    disagreeing = row(threads=1, processes=3, process_spread=0.08, within_spread=0.01, noisy="x")
    assert noise_advice([contended]) == [
        "--threads 1 (threads that share a core with other work wait for each other at every "
        "parallel step)"
    ]
    assert noise_advice([disagreeing, row()]) == [
        "more processes (--processes 6: the interval is across them, and narrows as their "
        "number grows)"
    ]
    # One thread beside other work: fewer threads cannot help, and nothing else was seen.
    lonely = row(threads=1, others_cores=1.9, noisy="x")
    assert noise_advice([lonely]) == ["rerun on a quieter machine"]
    assert noise_advice([row()]) == ["rerun on a quieter machine"]  # nothing noisy


def test_steal_and_throttling_past_five_percent_flag_a_cell():
    assert flag(row(steal_frac=0.08, throttled_frac=0.2)) == (
        "steal took 8% of its time; throttled took 20% of its time"
    )
    assert flag(row(steal_frac=0.05, throttled_frac=0.05)) == ""


STOPPED = (
    "its process was off the CPUs for 36% of its timed time, with no other work to explain it "
    "(stopped or suspended, or its step waited)"
)


@pytest.mark.parametrize(
    ("values", "reasons"),
    [
        # The report: suspended for 3 s of the timing, cpu_share 0.64, nothing else running.
        (dict(threads=1, cpu_share=0.64), [("off CPU 36%", STOPPED)]),
        # Two threads that got 0.64 of a core's time between them: even the one that times
        # the steps cannot have been running all along.
        (dict(threads=2, cpu_share=0.32), [("off CPU 36%", STOPPED)]),
        # Two threads on a partly serial step: 0.9 of a core, the timing thread at work.
        (dict(threads=2, cpu_share=0.45), []),
        (dict(threads=1, cpu_share=0.8), []),  # what tolerated sharing could cost: not flagged
        (dict(threads=1, cpu_share=0.97), []),
        # A busy machine lowers cpu_share too: said by the rule that explains it, once.
        (dict(threads=1, cpu_share=0.4, others_cores=1.8),
         [("1.8 busy cores", "its 1 thread shared 2 CPUs with 1.8 cores of other work")]),
        # A CUDA cell's host thread may sleep while the device works.
        (dict(threads=1, cpu_share=0.1, device="cuda"), []),
    ],
)  # fmt: skip
def test_a_process_off_the_cpus_for_a_large_part_of_its_timed_time_is_flagged(values, reasons):
    assert findings(row(**values)) == reasons


def test_a_stopped_cell_is_discounted_by_the_time_it_ran_and_gets_no_thread_advice():
    stopped = row(threads=2, cpu_share=0.32)
    assert noise.disturbances(stopped) == [STOPPED]
    assert slowdown_bound(stopped) == pytest.approx(1 / 0.32)  # it ran at least 32% of the time
    assert noise_advice([dataclasses.replace(stopped, noisy=flag(stopped))]) == [
        "rerun on a quieter machine"
    ]


def spin(cpu_seconds: float) -> None:
    """Keep this process on a CPU until it has used `cpu_seconds` of CPU time."""
    start = time.process_time()
    while time.process_time() - start < cpu_seconds:
        pass


def test_a_process_that_was_not_running_during_its_samples_is_flagged_from_its_counters(
    tmp_path,
):
    """Real counters around a stretch of work and a stretch of not running (asleep here,
    stopped in the report: to the counters the same). No /proc/stat under tmp_path, so no
    other work is seen, whatever this machine is doing."""
    before = system.read_counters(tmp_path)
    spin(0.05)
    time.sleep(0.2)
    seen = interference(before, system.read_counters(tmp_path), threads=1, steps=10, root=tmp_path)
    assert seen["others_cores"] is None
    stopped = row(threads=1, **{k: seen[k] for k in ("cpu_share", "others_cores")})
    (short, full), *_ = findings(stopped)
    assert short.startswith("off CPU ") and "with no other work to explain it" in full
    assert noise.off_cpu(stopped) > 0.75  # 0.05 s of CPU time in 0.25 s or more


def test_the_cpu_time_is_read_finer_than_a_clock_tick():
    """os.times() counts 10 ms ticks: a pass of a few milliseconds read 0 or 10 ms of CPU
    time, and so cpu_share 0 (off the CPUs all along) or 2."""
    before = system.read_counters()
    spin(0.003)
    used = system.read_counters().cpu_s - before.cpu_s
    assert 0.003 <= used < 0.009


def test_every_reason_is_kept_in_the_flag():
    noisy = row(ci_low_s=0.5, ci_high_s=1.5, others_cores=1.9, steal_frac=0.1)
    assert [short for short, _ in findings(noisy)] == ["CI ±50%", "1.9 busy cores", "steal 10%"]
    assert flag(noisy).count("; ") == 2


def test_rounds_keep_the_worse_noise_and_are_flagged_again():
    from seqbench.core.schema import Measurement
    from seqbench.measure.sampling import merge_rounds

    quiet = Measurement(
        row(rounds=1, cpu_share=0.99, others_cores=0.0, ctx_switches_per_step=1.0), [1.0] * 10
    )
    busy = Measurement(
        row(rounds=1, cpu_share=0.4, others_cores=1.8, ctx_switches_per_step=9.0), [1.0] * 10
    )
    merged = merge_rounds(quiet, busy).row
    assert (merged.cpu_share, merged.others_cores, merged.ctx_switches_per_step) == (0.4, 1.8, 9.0)
    assert "shared 2 CPUs with 1.8 cores" in merged.noisy
    assert merge_rounds(quiet, quiet).row.noisy == ""


def test_a_run_summary_counts_the_noisy_cells():
    rows = [row(), row(others_cores=1.5, noisy="x", load_after=3.5, cpu_share=0.5),
            ResultRow.for_cell(make_cell(), status="error")]  # fmt: skip
    summary = noise.summarize(rows)
    assert (summary["cells"], summary["noisy"]) == (2, 1)
    assert summary["others_cores_max"] == 1.5 and summary["cpu_share_min"] == 0.5
    assert summary["load_max"] == 3.5


@pytest.mark.parametrize(
    ("machine", "busy", "free"),
    [(Machine(2.0, 0.1, 0.5), False, 1.9), (Machine(2.0, 1.6, 1.0), True, 0.4),
     (Machine(2.0, None, 6.0), True, 2.0), (Machine(4.0, 0.2, 1.0, steal=0.2), True, 3.8)],
)  # fmt: skip
def test_a_machine_is_busy_when_others_use_its_cores_or_the_load_or_steal_is_high(
    machine, busy, free
):
    assert machine.busy is busy and machine.free == pytest.approx(free)


def test_the_system_check_warns_and_advises_on_a_busy_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(system, "affinity", lambda: {0, 1})
    root = fake_root(tmp_path, {"proc/self/cgroup": "0::/\n"})
    found = {c.name: c for c in checks(Machine(2.0, 1.8, 6.7, steal=0.0), threads=2, root=root)}
    assert found["other work"].ok is False and "seqbench ab" in found["other work"].advice
    assert found["load average"].ok is False
    assert found["threads"].ok is False and found["threads"].advice.endswith("--threads 1")
    assert found["steal"].ok is True
    assert found["frequency governor"].ok is None  # nothing to read in the fake root
    quiet = {c.name: c.ok for c in checks(Machine(2.0, 0.0, 0.2, steal=0.0), threads=2, root=root)}
    assert quiet["other work"] and quiet["threads"] and quiet["load average"]


def test_threads_follow_the_free_cpus_unless_the_user_chose(monkeypatch):
    import torch

    from seqbench.execute.threads import choose_threads
    from seqbench.plan.config import SuiteConfig

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    config, warning = choose_threads(SuiteConfig(), Machine(2.0, 1.7, 5.0))
    assert config.threads == 1
    assert "measuring with 1 thread instead of 2" in warning
    config, warning = choose_threads(SuiteConfig(), Machine(2.0, 0.0, 0.1))
    assert (config.threads, warning) == (2, "")
    config, warning = choose_threads(SuiteConfig(threads=2), Machine(2.0, 1.7, 5.0))
    assert config.threads == 2 and "--threads 1 is steadier" in warning
    config, warning = choose_threads(SuiteConfig(threads=1), Machine(2.0, 2.0, 7.4))
    assert config.threads == 1 and "flagged noisy" in warning and "threads" not in warning
    config, warning = choose_threads(SuiteConfig(threads=8), Machine(2.0, 0.0, 0.1))
    assert config.threads == 8 and "--threads 8 is more than the 2 CPUs" in warning
    config, warning = choose_threads(SuiteConfig(executor="ray"), Machine(2.0, 1.7, 5.0))
    assert (config.threads, warning) == (None, "")


def test_the_real_machine_can_be_read():
    machine = look.look(0.05)
    assert machine.cpus >= 1 and math.isfinite(machine.cpus)
    seen = system.interference(system.read_counters(), system.read_counters(), threads=1, steps=1)
    assert set(seen) == {"load_before", "load_after", "cpu_share", "ctx_switches_per_step",
                         "others_cores", "steal_frac", "throttled_frac", "cpu_mhz"}  # fmt: skip
    assert dataclasses.fields(ResultRow)  # the columns exist in the contract:
    assert {f.name for f in dataclasses.fields(ResultRow)} >= set(seen) | {
        "threads",
        "cpus",
        "noisy",
    }


def test_a_look_begun_earlier_waits_only_for_what_is_left_of_it(monkeypatch):
    # `seqbench run` begins its look before importing torch and planning (machine.look.Watch):
    # the look then ends without waiting, or waits only for the rest of its half second.
    from seqbench.core import timing

    waited: list[float] = []
    monkeypatch.setattr(timing, "sleep", waited.append)
    watch = look.Watch()
    machine = watch.look(3600.0)  # begun a moment ago: it waits for nearly all of it
    assert len(waited) == 1 and 3599.0 < waited[0] <= 3600.0
    assert machine.cpus >= 1
    look.Watch().look(0.0)  # nothing left of it: no wait
    assert len(waited) == 1


def test_own_work_and_waited_for_childrens_is_not_other_processes_work():
    # A look that goes on while this process works counts its CPU time (and that of the
    # children it waited for: a factory probed in a process of its own) as its own.
    import subprocess
    import sys

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    before_self = system.read_counters()
    before_all = system.read_counters(children=True)
    subprocess.run([sys.executable, "-c", burn], check=True)
    own = system.read_counters().cpu_s - before_self.cpu_s
    with_children = system.read_counters(children=True).cpu_s - before_all.cpu_s
    assert own < 0.25 <= with_children
