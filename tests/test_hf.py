"""`--arch hf:<model_type>`: transformers' models by name, built from their configurations."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from seqbench.cli import app
from seqbench.core.errors import ConfigError
from seqbench.models import build_model, count_parameters, get_arch, normalize_cell
from seqbench.models.base import CoreShape
from seqbench.storage import load_run
from tests.helpers import make_cell

transformers = pytest.importorskip("transformers", reason="the hf: architectures need it")

pytestmark = pytest.mark.usefixtures("one_thread")

TYPES = ["mamba", "mamba2", "rwkv", "xlstm", "recurrent_gemma", "llama", "gpt2"]


def reference(core, embedding: torch.nn.Embedding):
    """transformers' own model with the core's weights and seqbench's embedding as its input
    embedding, called the way a user calls it: on token ids."""
    config = core.model.config
    ref = transformers.AutoModel.from_config(config)
    missing, unexpected = ref.load_state_dict(core.model.state_dict(), strict=False)
    assert not unexpected and all("emb" in k or "wte" in k for k in missing), missing
    ref.set_input_embeddings(embedding)
    return ref.eval()


@pytest.mark.parametrize("model_type", TYPES)
def test_an_hf_model_computes_what_transformers_computes_on_token_ids(model_type):
    torch.manual_seed(0)
    cell = normalize_cell(
        make_cell(arch=f"hf:{model_type}", hidden=32, embed=32, layers=2, vocab=50, seq_len=12)
    )
    model = build_model(cell).eval()
    ids = torch.randint(0, 50, (2, 12))
    ref = reference(model.core, model.adapter)
    with torch.no_grad():
        ours = model.core(model.adapter(ids))
        theirs = ref(input_ids=ids, use_cache=False).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # The embedding counted once: seqbench's, none in the core.
    own = sum(p.numel() for p in ref.parameters()) - model.adapter.weight.numel()
    assert count_parameters(model.core) == own


def test_the_axes_set_the_configuration_and_a_variant_passes_fields_through():
    core = get_arch("hf:llama(intermediate_size=40,rms_norm_eps=0.001)").build(
        CoreShape(input_size=24, hidden=128, layers=3)
    )
    config = core.model.config
    assert (config.hidden_size, config.num_hidden_layers) == (128, 3)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 2, 64)
    assert (config.intermediate_size, config.rms_norm_eps) == (40, 0.001)
    assert isinstance(core.project, torch.nn.Linear)  # --embed 24 is projected to H = 128
    mamba2 = get_arch("hf:mamba2").build(CoreShape(input_size=16, hidden=16, layers=1))
    assert (mamba2.model.config.head_dim, mamba2.model.config.num_heads) == (32, 1)


def test_the_kernel_says_when_transformers_ran_its_reference_path():
    mamba = get_arch("hf:mamba").build(CoreShape(input_size=16, hidden=16, layers=1))
    kernel, note = mamba.implementation(False, "cpu", "float32")
    assert kernel == "hf-reference" and "falling back to its reference PyTorch" in note
    llama = get_arch("hf:llama").build(CoreShape(input_size=16, hidden=16, layers=1))
    assert llama.implementation(False, "cpu", "float32") == ("hf", "")


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        (
            "hf:lama",
            "hf:lama: transformers has no model type 'lama'; did you mean diffllama, llama,",
        ),
        ("hf:llama(nope=1)", "hf:llama(nope=1): LlamaConfig has no field 'nope'"),
        ("hf:llama(x)", "'hf:llama(x)': 'x' is not field=value"),
    ],
)
def test_a_wrong_hf_name_is_one_line(cli, tmp_path, arch, message):
    result = cli.invoke(app, ["run", "--arch", arch, "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_a_model_transformers_cannot_build_at_the_runs_shape_names_it(cli, tmp_path):
    # RWKV's initialisation divides by num_hidden_layers - 1: one layer cannot be built.
    result = cli.invoke(app, ["run", "--arch", "hf:rwkv", "--layers", "1", "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: hf:rwkv: transformers cannot build it at hidden 32, layers 1: "
        "ZeroDivisionError: division by zero\n"
    )


def test_without_transformers_one_line_says_how_to_install_it(tmp_path):
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "from seqbench.cli import app\n"
        f"app(['run', '--arch', 'hf:llama', '--root', {str(tmp_path)!r}])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: hf: architectures need transformers, which is not installed: "
        "pip install 'seqbench[hf]'"
    )


def test_a_run_measures_hf_models_with_their_kernel_and_no_transformers_chatter(cli, tmp_path):
    result = cli.invoke(
        app,
        ["run", "--arch", "hf:llama,hf:mamba", "--seq-len", "16", "--batch-size", "2",
         "--hidden", "16", "--embed", "16", "--mode", "infer,train", "--processes", "1",
         "--min-time", "0", "--min-repeats", "3", "--threads", "1", "--no-ceiling",
         "--root", str(tmp_path), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "falling back" not in result.stderr  # it is in the rows, not on the terminal
    rows = load_run("latest", tmp_path).rows
    assert {(r.arch, r.mode, r.status) for r in rows} == {
        (a, m, "ok") for a in ("hf:llama", "hf:mamba") for m in ("infer", "train")
    }
    assert {r.arch: r.kernel for r in rows} == {"hf:llama": "hf", "hf:mamba": "hf-reference"}
    assert all(r.flops_per_seq and r.flops_per_seq > 0 for r in rows)


def test_hf_names_are_refused_without_a_model_type():
    with pytest.raises(ConfigError, match="transformers has no model type ''"):
        get_arch("hf:")


def test_a_package_that_takes_over_a_model_type_does_not_replace_transformers_own():
    # flash-linear-attention registers its own Triton Mamba under transformers' name
    # 'mamba' when it is imported; hf:mamba must still build transformers' model (fla's
    # failed on a CPU with "0 active drivers", and where it runs it is not transformers').
    pytest.importorskip("fla", reason="flash-linear-attention is the package that does it")
    if not transformers.CONFIG_MAPPING["mamba"].__module__.startswith("fla."):
        pytest.skip("this flash-linear-attention does not take over 'mamba'")
    for model_type in ("mamba", "mamba2"):
        core = get_arch(f"hf:{model_type}").build(CoreShape(input_size=8, hidden=16, layers=1))
        assert (
            type(core.model).__module__ == f"transformers.models.{model_type}.modeling_{model_type}"
        )


@pytest.mark.parametrize("model_type", TYPES)
def test_stepping_through_transformers_cache_equals_the_whole_sequence(model_type):
    from seqbench.models.hf import STEPPING

    torch.manual_seed(0)
    core = get_arch(f"hf:{model_type}").build(CoreShape(input_size=24, hidden=32, layers=2))
    core = core.double().eval()
    if model_type not in STEPPING:
        assert f"transformers' {model_type} is not stepped" in core.step_unsupported()
        return
    assert core.step_unsupported() is None
    x = torch.randn(2, 7, 24, dtype=torch.float64)
    with torch.no_grad():
        whole = core(x)
        state, stepped = core.init_state(2, "cpu", torch.float64), []
        for t in range(7):
            y, state = core.step(x[:, t], state)
            stepped.append(y)
        # The timed step repeats token T from one state: it must see the same T - 1 tokens.
        before = core.init_state(2, "cpu", torch.float64)
        for t in range(6):
            _, before = core.step(x[:, t], before)
        again = [core.step(x[:, 6], before)[0] for _ in range(3)]
    torch.testing.assert_close(torch.stack(stepped, 1), whole, atol=1e-6, rtol=1e-6)
    if model_type in ("llama", "gpt2"):  # a key/value cache, cut back before each step
        assert all(torch.equal(y, again[0]) for y in again)
        assert int(before.cache.get_seq_length()) == 7


def test_a_step_cell_of_an_hf_model_measures_and_carries_its_cache_bytes(cli, tmp_path):
    result = cli.invoke(
        app,
        ["run", "--arch", "hf:gpt2,hf:mamba,hf:rwkv", "--seq-len", "8", "--batch-size", "2",
         "--hidden", "16", "--embed", "16", "--layers", "2", "--mode", "step", "--processes", "1",
         "--min-time", "0", "--min-repeats", "3", "--threads", "1", "--no-ceiling",
         "--root", str(tmp_path), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r.arch: r for r in load_run("latest", tmp_path).rows}
    assert rows["hf:gpt2"].status == rows["hf:mamba"].status == "ok"
    # GPT-2's cache after the step: keys and values of 2 layers, T = 8 tokens, 16 wide,
    # float32, per sequence (as for seqbench's own attention).
    assert rows["hf:gpt2"].state_bytes == 2 * 2 * 8 * 16 * 4
    assert rows["hf:mamba"].state_bytes > 0
    assert rows["hf:rwkv"].status == "skipped" and "not stepped" in rows["hf:rwkv"].message
    # the path that ran, as in the other modes (a step said "default" before)
    assert (rows["hf:gpt2"].kernel, rows["hf:mamba"].kernel) == ("hf", "hf-reference")


@pytest.mark.parametrize("model_type", TYPES)
def test_the_lm_task_trains_an_hf_model_through_its_own_head_and_loss(model_type):
    from seqbench.measure.workload import build_workload
    from seqbench.tasks import prepared

    torch.manual_seed(0)
    cell = normalize_cell(
        make_cell(arch=f"hf:{model_type}", hidden=32, embed=32, layers=2, seq_len=12,
                  task="lm(vocab=50)", mode="train")
    )  # fmt: skip
    task = prepared(cell.task, cell.seq_len, cell.vocab, 0, None)
    work = build_workload(cell, 0, None, task)
    model, core = work.model, work.model.core
    config = core.model.config
    assert (config.vocab_size, type(model.head).__name__) == (50, "Identity")
    # Tied where the configuration ties them: the embedding is the head's weight, counted once.
    tied = bool(getattr(config, "tie_word_embeddings", False))
    assert (model.adapter.weight is core.model.get_output_embeddings().weight) == tied
    fresh = transformers.AutoModelForCausalLM.from_config(config)
    assert count_parameters(model) == sum(p.numel() for p in fresh.parameters())

    # transformers' causal LM with the same weights, called on the tokens with labels
    ref = transformers.AutoModelForCausalLM.from_config(config)
    missing, unexpected = ref.load_state_dict(core.model.state_dict(), strict=False)
    assert not unexpected and all("emb" in k or "wte" in k for k in missing), missing
    ref.set_input_embeddings(model.adapter)
    batch = task.train_batch(3, torch.Generator().manual_seed(1))
    tokens = torch.cat([batch.x, batch.y[:, -1:]], dim=1)  # x, and the token after its last
    model.eval()
    with torch.no_grad():
        theirs = ref.eval()(input_ids=tokens, labels=tokens, use_cache=False).loss
        ours = core.own_loss(model(batch.x), batch.y)
    timed = work.train_step(batch.x, batch.y)  # what a training step computes, before updating
    assert "lm task's form) is not stepped" in core.step_unsupported()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(timed.detach(), theirs, rtol=1e-5, atol=1e-5)


WHOLE = """
import transformers

def llama(shape):
    config = transformers.LlamaConfig(
        hidden_size=48, intermediate_size=96, num_hidden_layers=shape.layers,
        num_attention_heads=2, num_key_value_heads=2, vocab_size=1000,
    )
    return transformers.LlamaForCausalLM(config)
"""


def test_a_factory_may_return_a_whole_transformers_model(cli, tmp_path, monkeypatch):
    from seqbench.models.hf import HFCore

    (tmp_path / "whole_models.py").write_text(WHOLE)
    monkeypatch.chdir(tmp_path)  # a user's models live in the current folder
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(0)
    cell = normalize_cell(
        make_cell(arch="whole_models:llama", hidden=32, embed=16, layers=2, vocab=50, seq_len=12)
    )
    model = build_model(cell).eval()
    assert isinstance(model.core, HFCore) and model.core.out_features == 48
    # Its body only, fed through seqbench's embedding and a projection 16 -> 48: its own
    # embedding (1,000 x 48) and language-model head are neither run nor counted.
    import whole_models

    body = whole_models.llama(CoreShape(input_size=16, hidden=32, layers=2)).model
    assert count_parameters(model.core) == (
        sum(p.numel() for p in body.parameters()) - 1000 * 48 + (16 * 48 + 48)
    )
    x = torch.randn(2, 12, 16)
    body.load_state_dict(model.core.model.state_dict(), strict=False)
    with torch.no_grad():
        theirs = body(inputs_embeds=model.core.project(x), use_cache=False).last_hidden_state
        torch.testing.assert_close(model.core(x), theirs)
    result = cli.invoke(
        app,
        ["run", "--arch", "whole_models:llama", "--seq-len", "16", "--batch-size", "2",
         "--hidden", "16", "--embed", "16", "--layers", "2", "--mode", "infer,train,step",
         "--processes", "1", "--min-time", "0", "--min-repeats", "3", "--threads", "1",
         "--no-ceiling", "--root", str(tmp_path / "results"), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = load_run("latest", tmp_path / "results").rows
    assert {(r.mode, r.status, r.kernel) for r in rows} == {
        (m, "ok", "user module") for m in ("infer", "train", "step")
    }


def test_llamas_flops_include_its_attention_and_equal_the_hand_count():
    from seqbench.measure.workload import build_workload, counted_flops

    cell = normalize_cell(
        make_cell(arch="hf:llama", hidden=32, embed=32, layers=2, seq_len=16, batch_size=2)
    )
    h, t, inner, layers = 32, 16, 4 * 32, 2  # one head of 32 (attention_heads(32)), MLP 4·H
    projections = 2 * 4 * h * h + 2 * 3 * h * inner  # q, k, v, o; gate, up, down: per token
    attention = 2 * 2 * t * t * h  # Q·Kᵀ and the weights·V, per sequence (the SDPA formula)
    head = 2 * h  # seqbench's head, one logit from the last step
    assert counted_flops(build_workload(cell, 0)) == (
        layers * (t * projections + attention) + head,
        "",
    )
