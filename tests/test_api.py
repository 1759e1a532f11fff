"""seqbench from Python: `seqbench.run` and `seqbench.measure_module` (seqbench.api)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import seqbench
from seqbench.core.errors import ConfigError
from seqbench.core.schema import RESULT_COLUMNS
from seqbench.storage import load_run

# The busy-machine warning (session.choose_threads, tested in test_noise) is not the subject here.
pytestmark = pytest.mark.filterwarnings("ignore:this machine is busy:RuntimeWarning")

# Small budgets: these tests check what is recorded, never how fast.
QUICK = {"min_time": 0.0, "min_repeats": 3, "warmup_time": 0.0, "warmup_steps": 1, "threads": 1,
         "processes": 1}  # fmt: skip


class Pair(nn.Module):
    """Takes two tensors (a tuple) or keywords (a dict), returns a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 4)
        self.b = nn.Linear(8, 4, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, scale: float = 1.0):
        return self.a(x) * scale, self.b(y)


def test_a_tuple_input_is_swept_over_lengths_and_modes(one_thread):
    model = Pair()
    frame = seqbench.measure_module(
        model, lambda b, t: (torch.randn(b, t, 8), torch.randn(b, t, 8)), label="pair",
        seq_len=[16, 8], batch_size=[2], mode=["infer", "train"], **QUICK,
    )  # fmt: skip
    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert len(frame) == 2 * 2
    assert set(frame.status) == {"ok"}
    assert set(frame.params) == {8 * 4 + 4 + 8 * 4}
    assert list(zip(frame.batch_size, frame.seq_len, frame["mode"], strict=True))[:3] == [
        (2, 8, "infer"), (2, 8, "train"), (2, 16, "infer"),
    ]  # fmt: skip
    assert frame.cell_id[0] == "pair-T8-B2-H0-L0-uni-do0-rd0-V0-E0-cpu-float32-infer"
    assert set(frame.kernel) == {"user module"}
    assert (frame.repeats >= 3).all() and (frame.peak_mem_bytes > 0).all()
    assert (frame.tokens_per_s == frame.seq_per_s * frame.seq_len).all()
    # Counted on one step: two Linear(8, 4) over T positions, 2 x 8 x 4 FLOPs each per
    # position forward; training adds the weights' gradients (the same again) and no
    # input gradients (the inputs need none).
    assert list(frame.flops_per_seq) == [128 * 8, 256 * 8, 128 * 16, 256 * 16]
    assert model.training  # the module's own mode is given back


def test_a_dict_input_is_passed_as_keywords_with_a_custom_loss_and_target(one_thread):
    seen = []

    def loss(output, target):
        seen.append(target.shape)
        return nn.functional.mse_loss(output[0], target)

    model = Pair()
    before = model.a.weight.detach().clone()
    inputs = {"x": torch.randn(4, 6, 8), "y": torch.randn(4, 6, 8), "scale": 2.0}
    frame = seqbench.measure_module(
        model, inputs, mode="train", target=torch.zeros(4, 6, 4), loss=loss,
        optimizer=lambda p: torch.optim.Adam(p, lr=0.1), **QUICK,
    )  # fmt: skip
    assert (frame.batch_size[0], frame.seq_len[0], frame.status[0]) == (4, 6, "ok")
    assert seen and set(seen) == {torch.Size([4, 6, 4])}
    assert not torch.equal(model.a.weight, before)  # the user's optimiser stepped


def test_a_step_that_raises_is_an_error_row_with_its_message(one_thread):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("the model broke")

    frame = seqbench.measure_module(Broken(), torch.zeros(2, 5), **QUICK)
    assert (frame.status[0], frame.message[0]) == ("error", "RuntimeError: the model broke")


def test_streaming_a_user_module_is_a_skipped_row_that_says_why(one_thread):
    frame = seqbench.measure_module(nn.Linear(3, 3), torch.zeros(1, 4, 3), mode="step", **QUICK)
    assert frame.status[0] == "skipped" and "seqbench run --arch" in frame.message[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq_len": 32}, "seq_len: fixed inputs have seq_len 5"),
        ({"min_tme": 1.0}, "unknown setting 'min_tme'"),
        ({"isolate": True}, "isolate=True needs the model by its importable name"),
        ({"label": "a b"}, "label: expected"),
        ({"key": {"hiden": 3}}, "key: unknown column 'hiden'"),
        ({"mode": "fast"}, "mode: expected one of infer, train, step"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError) as error:
        seqbench.measure_module(nn.Linear(3, 3), torch.zeros(2, 5, 3), **kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_saved_module_run_reads_back_with_its_samples(tmp_path, one_thread):
    frame = seqbench.measure_module(
        nn.Linear(8, 1), lambda b, t: torch.randn(b, t, 8), label="lin", seq_len=[4, 8],
        batch_size=2, out=tmp_path, **QUICK,
    )  # fmt: skip
    run = load_run(frame.attrs["run_id"], tmp_path)
    assert str(run.path) == frame.attrs["run_path"]
    assert [r.cell_id for r in run.rows] == list(frame.cell_id)
    assert [len(run.samples[c]) for c in frame.cell_id] == list(frame.repeats)
    assert run.meta.state == "complete"
    assert run.meta.module["class"] == "torch.nn.modules.linear.Linear"


def test_without_out_nothing_is_kept(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    frame = seqbench.measure_module(nn.Linear(2, 2), torch.zeros(1, 2, 2), **QUICK)
    assert frame.attrs["run_path"] is None and list(tmp_path.iterdir()) == []


def test_importing_seqbench_loads_neither_torch_nor_the_api():
    import subprocess
    import sys

    code = "import sys, seqbench; print('torch' in sys.modules, 'seqbench.api' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_names_that_do_not_import_are_one_line_errors():
    with pytest.raises(ConfigError, match="^no_such_module:ids: cannot import 'no_such_module'"):
        seqbench.measure_module("tests.api_models:small", "no_such_module:ids", isolate=True)
    with pytest.raises(
        ConfigError, match="^tests.api_models:nothing: module 'tests.api_models' has"
    ):
        seqbench.measure_module("tests.api_models:nothing", "tests.api_models:small_inputs")
    with pytest.raises(ConfigError, match="give loss by name too"):
        seqbench.measure_module("tests.api_models:small", "tests.api_models:small_inputs",
                                loss=lambda y: y.sum())  # fmt: skip


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ({"model": "tests.api_models:Nope"},
         "tests.api_models:Nope: module 'tests.api_models' has no attribute 'Nope'"),
        ({"model": "no_such_module:small"},
         "no_such_module:small: cannot import 'no_such_module'"),
        ({"loss": "tests.api_models:no_loss"},
         "tests.api_models:no_loss: module 'tests.api_models' has no attribute 'no_loss'"),
        ({"target": "tests.api_models"}, "target 'tests.api_models': expected "
                                         "'package.module:attribute'"),
        ({"model": "tests.api_models:__name__"},
         "model 'tests.api_models:__name__' is a str, not an nn.Module or a factory of one"),
    ],
)  # fmt: skip
def test_an_isolated_modules_names_are_found_before_any_cell_runs(tmp_path, names, message):
    """The docs: a caller's mistake raises SeqbenchError; with isolate=True it was an
    error row from the fresh process instead. Now nothing is measured, no run is saved."""
    given = {"model": "tests.api_models:small", "inputs": "tests.api_models:small_inputs",
             **names}  # fmt: skip
    with pytest.raises(seqbench.SeqbenchError) as error:
        seqbench.measure_module(**given, isolate=True, out=tmp_path, **QUICK)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_the_callers_torch_threads_are_given_back():
    torch.set_num_threads(2)
    frame = seqbench.measure_module(nn.Linear(2, 2), torch.zeros(1, 2, 2), **QUICK)
    assert (frame.threads[0], torch.get_num_threads()) == (1, 2)


def test_a_live_module_is_measured_in_fresh_processes(tmp_path):
    """A module that pickles goes, as a copy, to each of its fresh worker processes: the
    row's interval is across them, and the caller's module is left as it was."""
    from tests.api_models import small, small_inputs

    model = small()
    before = [p.detach().clone() for p in model.parameters()]
    settings = {**QUICK, "processes": 2}
    frame = seqbench.measure_module(model, small_inputs, mode=["infer", "train"], seq_len=8,
                                    batch_size=2, out=tmp_path, **settings)  # fmt: skip
    assert list(frame.status) == ["ok", "ok"] and list(frame.processes) == [2, 2]
    assert frame.process_spread.notna().all() and (frame.ci_low_s < frame.ci_high_s).all()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    run = load_run(frame.attrs["run_path"])
    assert [len(run.sample_groups(r.cell_id, run.rounds_per_process(r))) for r in run.rows] == [
        2,
        2,
    ]


def test_a_module_that_cannot_be_pickled_is_measured_here_and_says_so():
    settings = {**QUICK, "processes": 2}
    with pytest.warns(RuntimeWarning, match="measured in this process only, since it cannot be"):
        frame = seqbench.measure_module(nn.Linear(2, 2), lambda b, t: torch.zeros(b, t, 2),
                                        seq_len=4, batch_size=1, **settings)  # fmt: skip
    assert list(frame.processes) == [1]
