"""LoRA (PEFT) and full fine-tuning on a tiny random Llama: both change the policy, only the adapter trains
under LoRA, the reference is the adapter switched off, and saved policies reload with transformers."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlvr.config import ConfigError, load_config
from rlvr.models.loading import load_policy, save_policy
from rlvr.models.lora import is_lora, reference_off
from rlvr.trainer import Trainer

pytest.importorskip("peft")

PROBE = torch.tensor([[1, 5, 9, 14, 22, 7, 3, 11]])


@torch.no_grad()
def _logits(model) -> torch.Tensor:
    was = model.training
    model.eval()
    out = model(input_ids=PROBE).logits.float()
    model.train(was)
    return out


def _train(tmp_path, tiny_recipe, name, steps=2, **overrides):
    cfg = load_config(tiny_recipe(name + ".yaml", **{"train.steps": steps, "train.lr": 3e-2, **overrides}))
    trainer = Trainer(cfg, tmp_path / name)
    before = _logits(trainer.model)
    base_before = {k: v.clone() for k, v in trainer.model.state_dict().items() if "lora_" not in k}
    trainer.run(progress=False)
    trainer.logger.close()
    return cfg, trainer, before, base_before


@pytest.mark.parametrize("lora_r", [0, 4])
def test_training_changes_the_policy_and_the_saved_policy_reloads_with_the_same_logits(
    tmp_path, tiny_recipe, lora_r
):
    cfg, trainer, before, base_before = _train(tmp_path, tiny_recipe, f"r{lora_r}", **{"model.lora_r": lora_r})
    after = _logits(trainer.model)
    assert (after - before).abs().max() > 1e-3  # the policy's output moved
    assert is_lora(trainer.model) == (lora_r > 0)
    if lora_r:
        # Only the adapter trained: every base weight is bit-for-bit where it started.
        for k, v in trainer.model.state_dict().items():
            if "lora_" not in k:
                assert torch.equal(v, base_before[k]), k
        trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
        assert trainable and all("lora_" in n for n in trainable)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / f"r{lora_r}" / "final")
    assert not is_lora(reloaded)  # merged on save (model.merge_lora, the default)
    assert torch.allclose(_logits(reloaded), after, atol=1e-5)


def test_lora_reference_is_the_base_with_the_adapter_off(tmp_path, tiny_recipe):
    cfg, trainer, before, _ = _train(tmp_path, tiny_recipe, "ref", **{"model.lora_r": 4, "algorithm.kl_coef": 0.1})
    assert trainer.ref_model is None  # no second copy of the weights
    with reference_off(trainer.model):
        assert torch.allclose(_logits(trainer.model), before, atol=1e-6)
    assert not torch.allclose(_logits(trainer.model), before, atol=1e-3)
    rows = [r for r in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and '"kl"' in rows[-1]


def test_unmerged_adapter_saves_and_reloads_onto_its_base(tmp_path, tiny_recipe):
    base_cfg = load_config(tiny_recipe()).model
    base, tok = load_policy(base_cfg)
    save_policy(base, tok, tmp_path / "base")
    cfg = load_config(tiny_recipe(), ["model.kind=hf", f"model.path={tmp_path / 'base'}", "model.lora_r=2"]).model
    model, tok = load_policy(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # a trained adapter (B starts at zero)
    save_policy(model, tok, tmp_path / "adapter", merge=False)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert not (tmp_path / "adapter" / "model.safetensors").exists()  # the adapter alone, not the base
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "adapter")
    assert torch.allclose(_logits(reloaded), _logits(model), atol=1e-5)


def test_lora_run_resumes_from_its_adapter_checkpoint_exactly(tmp_path, tiny_recipe):
    recipe = tiny_recipe(**{"train.steps": 3, "train.checkpoint_every": 1, "model.lora_r": 4})
    straight = Trainer(load_config(recipe), tmp_path / "straight")
    straight.run(progress=False)
    straight.logger.close()
    partial_cfg = load_config(recipe, ["train.steps=2"])
    partial = Trainer(partial_cfg, tmp_path / "resumed")
    partial.run(progress=False)
    partial.logger.close()
    resumed = Trainer(load_config(recipe), tmp_path / "resumed", resume=True)
    assert resumed.step_count == 2 and is_lora(resumed.model)
    resumed.run(progress=False)
    resumed.logger.close()
    for (n, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(a, b), n


def test_bad_lora_settings_are_refused():
    with pytest.raises(ConfigError, match="model.lora_r"):
        load_config(None, ["model.lora_r=-1"])
    with pytest.raises(ConfigError, match="model.lora_dropout"):
        load_config(None, ["model.lora_dropout=1.5"])
