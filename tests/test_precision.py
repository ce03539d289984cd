"""Mixed precision: fp32 master weights learn at RL learning rates where pure bf16 weights round the update
away; the engine samples from a bf16 copy refreshed every step; checkpoints hold the masters and resume exactly."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from rlvr.batching import make_batch
from rlvr.config import AlgorithmConfig, ModelConfig, TrainConfig, load_config
from rlvr.learner import Learner
from rlvr.models.loading import compute_dtype, load_policy
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.cpu_kernels import packs
from rlvr.rollout.torch_engine import TorchEngine, inference_copy
from rlvr.trainer import Trainer
from rlvr.types import Problem, Rollout

TINY = {"kind": "tiny", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 64, "device": "cpu", "dtype": "bfloat16"}
PROBLEM = Problem("p", "", 0, "arithmetic")


def _batch(model, tok, dtype):
    """Three prompts' completions sampled from the model's rollout copy in `dtype`, advantages +-1."""
    prompts = [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"]
               for t in ("123+456=", "7+8=", "42*3=", "9-1=")]
    engine = TorchEngine(inference_copy(model, dtype), tok.pad_token_id)
    groups = engine.generate(prompts, SamplingParams(2, 12, 1.0, 1.0, ()), torch.Generator().manual_seed(0))
    rollouts = [Rollout(PROBLEM, p, c.token_ids, c.logprobs, "", c.finish_reason, g)
                for g, (p, group) in enumerate(zip(prompts, groups)) for c in group]
    adv = torch.tensor([1.0, -1.0] * (len(rollouts) // 2))
    return make_batch(rollouts, adv, tok.pad_token_id)


def _one_update(master_weights: bool) -> tuple[float, dict]:
    """Share of trainable elements one update at lr 1e-6 changed, and the learner's stats."""
    cfg = ModelConfig(**TINY)
    model, tok = load_policy(cfg, seed=0, master_weights=master_weights)
    dtype = compute_dtype(cfg, model)
    assert dtype == torch.bfloat16
    learner = Learner(model, TrainConfig(lr=1e-6, grad_clip=0.0), AlgorithmConfig(loss_agg="token_mean"),
                      max_new_tokens=12, compute_dtype=dtype)
    batch = _batch(model, tok, dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    stats = learner.update(batch)
    changed = sum(int((p.detach() != b).sum()) for p, b in zip(trainable, before))
    return changed / sum(p.numel() for p in trainable), stats


def test_master_weights_take_updates_that_pure_bf16_rounds_away():
    frac, stats = _one_update(master_weights=True)
    assert frac > 0.9, frac
    assert "update/changed_frac" not in stats  # masters are fp32: nothing to watch

    pure_frac, pure_stats = _one_update(master_weights=False)
    assert pure_frac < 0.2, pure_frac  # most bf16 weights cannot move by ~1e-6
    assert pure_stats["update/changed_frac"] == pure_frac


def test_masters_are_fp32_and_the_engine_copy_is_bf16():
    model, _ = load_policy(ModelConfig(**TINY), seed=0)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    copy = inference_copy(model, torch.bfloat16)
    assert copy is not model and {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert inference_copy(model, torch.float32) is model  # same dtype: shared, no copy
    served, _ = load_policy(ModelConfig(**TINY), seed=0, training=False)
    assert {p.dtype for p in served.parameters()} == {torch.bfloat16}


def test_lora_adapter_and_its_optimizer_state_are_fp32_on_a_bf16_base():
    model, _ = load_policy(ModelConfig(**{**TINY, "lora_r": 4, "lora_targets": "q_proj,v_proj"}), seed=0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.float32}
    assert {p.dtype for p in frozen} == {torch.bfloat16}
    assert inference_copy(model, torch.bfloat16) is model  # the engine shares the bf16 base
    learner = Learner(model, TrainConfig(lr=1e-3), AlgorithmConfig(loss_agg="token_mean"), max_new_tokens=12,
                      compute_dtype=torch.bfloat16)
    learner.update(_batch(model, _tok(), torch.bfloat16))
    states = [s for s in learner.optimizer.state.values() if "exp_avg" in s]
    assert states and all(s["exp_avg"].dtype == torch.float32 for s in states)


def _tok():
    from rlvr.models.tokenizer import build_char_tokenizer

    return build_char_tokenizer()


def test_bf16_run_syncs_the_engine_copy_and_resumes_exactly(tmp_path, tiny_recipe):
    recipe = tiny_recipe(**{"model.dtype": "bfloat16", "train.steps": 4, "train.checkpoint_every": 2})
    cfg = load_config(recipe)
    straight = Trainer(cfg, tmp_path / "straight")
    assert straight.engine.model is not straight.model
    straight.run(progress=False)
    for name, w in straight.model.state_dict().items():  # the engine holds the masters rounded to bf16
        assert torch.equal(straight.engine.model.state_dict()[name], w.to(torch.bfloat16)), name
    saved = load_file(tmp_path / "straight/checkpoints/step_4/model/model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}

    first = Trainer(load_config(recipe), tmp_path / "killed")
    first.cfg.train.steps = 2
    first.run(progress=False)
    resumed = Trainer(cfg, tmp_path / "killed", resume=True)
    resumed.run(progress=False)
    a = load_file(tmp_path / "killed/final/model.safetensors")
    b = load_file(tmp_path / "straight/final/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_a_bf16_engine_beside_fp32_masters_turns_the_correction_on_and_logs_it(tmp_path, tiny_recipe):
    trainer = Trainer(load_config(tiny_recipe(**{"model.dtype": "bfloat16", "train.steps": 1})), tmp_path / "run")
    assert trainer.learner.correct_offpolicy  # auto: the engine samples from a bf16 copy
    # the bf16 copy decodes on packed weights where oneDNN packs bf16 (AVX-512 or AVX-NE-CONVERT)
    packed = "CPU decode on packed weights, " if packs(torch.bfloat16) else ""
    assert (f"rollout weights same ({packed}decode steps as a layer loop, freed host memory kept for reuse), "
            "off-policy correction on (auto)") in trainer.header()
    metrics = trainer.step()
    assert metrics["offpolicy/active"] == 1.0 and metrics["offpolicy/kl"] > 0.0
    assert 0.0 <= metrics["offpolicy/truncated_frac"] <= 1.0 and 0.0 <= metrics["offpolicy/masked_frac"] <= 1.0
    fp32 = Trainer(load_config(tiny_recipe(**{"model.dtype": "float32"})), tmp_path / "fp32")
    assert not fp32.learner.correct_offpolicy and fp32.engine.model is fp32.model


def test_int8_rollouts_run_a_step_and_show_in_the_header(tmp_path, tiny_recipe):
    pytest.importorskip("torchao")
    cfg = load_config(tiny_recipe(**{"model.dtype": "float32", "rollout.weights": "int8", "train.steps": 1}))
    trainer = Trainer(cfg, tmp_path / "run")
    assert "rollout weights int8" in trainer.header() and trainer.learner.correct_offpolicy
    metrics = trainer.step()
    assert metrics["offpolicy/kl"] > 0.0 and trainer.engine.version == 1


@pytest.mark.parametrize("native", [True, False])
def test_the_header_warns_of_bf16_on_a_cpu_that_emulates_it(tmp_path, tiny_recipe, monkeypatch, native):
    monkeypatch.setattr("rlvr.trainer.cpu_has_native_bf16", lambda: native)
    warning = "WARNING bf16 on a CPU without native bf16"
    bf16 = Trainer(load_config(tiny_recipe(**{"model.dtype": "bfloat16"})), tmp_path / "bf16")
    assert (warning in bf16.header()) is not native
    copy = Trainer(load_config(tiny_recipe(**{"model.dtype": "float32", "rollout.weights": "bf16"})), tmp_path / "copy")
    assert (warning in copy.header()) is not native  # an fp32 learner with a bf16 engine copy
    fp32 = Trainer(load_config(tiny_recipe(**{"model.dtype": "float32"})), tmp_path / "fp32")
    assert warning not in fp32.header()


def test_the_header_says_packed_decode_only_where_a_layer_is_packed(tmp_path, tiny_recipe, monkeypatch):
    monkeypatch.setattr("rlvr.rollout.cpu_kernels.packs", lambda dtype: dtype == torch.float32)
    bf16 = Trainer(load_config(tiny_recipe(**{"model.dtype": "bfloat16"})), tmp_path / "bf16")
    assert "packed weights" not in bf16.header() and bf16.engine.packed is not None
    fp32 = Trainer(load_config(tiny_recipe(**{"model.dtype": "float32"})), tmp_path / "fp32")
    assert "CPU decode on packed weights" in fp32.header()
