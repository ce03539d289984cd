"""The built-in character tokenizer and tiny Llama: Hugging Face round trips, sizes, prompts and stop tokens."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.config import load_config
from rlvr.models.loading import encode_prompt, load_policy, save_policy, stop_token_ids
from rlvr.models.tiny import build_tiny_llama, count_parameters
from rlvr.models.tokenizer import TAG_TOKENS
from rlvr.types import Problem

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TEXT = "<think>7+5=12 4+8+1=13\n3+2+1=6</think><answer>632</answer> ~`{}|"


def test_tags_are_single_tokens_and_text_round_trips(char_tokenizer):
    for tag in TAG_TOKENS:
        assert len(char_tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    ids = char_tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(TEXT) - sum(len(t) - 1 for t in TAG_TOKENS)  # one token per character or tag
    assert char_tokenizer.decode(ids) == TEXT
    assert (
        char_tokenizer("12", add_special_tokens=True)["input_ids"]
        == char_tokenizer("12", add_special_tokens=False)["input_ids"]
    )  # no BOS/EOS added behind our back: encode_prompt adds BOS itself


def test_save_pretrained_reloads_with_auto_classes(tmp_path, make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    save_policy(model, char_tokenizer, tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert (
        tok(TEXT, add_special_tokens=False)["input_ids"]
        == char_tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    )
    assert tok.decode(tok(TEXT, add_special_tokens=False)["input_ids"]) == TEXT
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (
        char_tokenizer.pad_token_id,
        char_tokenizer.bos_token_id,
        char_tokenizer.eos_token_id,
    )
    assert len(tok) == len(char_tokenizer)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor(
        [[char_tokenizer.bos_token_id] + char_tokenizer(TEXT, add_special_tokens=False)["input_ids"]]
    )
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert all(torch.equal(p, reloaded.state_dict()[k]) for k, p in model.state_dict().items())


def test_build_is_deterministic_by_seed(char_tokenizer):
    a = build_tiny_llama(char_tokenizer, 32, 2, 2, 64, 64, seed=0)
    b = build_tiny_llama(char_tokenizer, 32, 2, 2, 64, 64, seed=0)
    c = build_tiny_llama(char_tokenizer, 32, 2, 2, 64, 64, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)
    # Seeding happens in a forked stream: building a model leaves the global RNG alone.
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    build_tiny_llama(char_tokenizer, 32, 2, 2, 64, 64, seed=5)
    assert torch.equal(torch.rand(1), before)


def test_demo_model_has_a_few_hundred_thousand_to_millions_of_parameters():
    cfg = load_config(CONFIGS / "demo.yaml").model
    model, tok = load_policy(cfg)
    n = count_parameters(model)
    print(f"demo policy: {n:,} parameters")
    assert 500_000 < n < 10_000_000
    assert model.config.vocab_size == len(tok)
    assert next(model.parameters()).dtype == torch.float32  # tiny models stay fp32 on CPU


def test_prompt_encoding_and_stop_tokens(char_tokenizer):
    problem = Problem("p", "347+285=", 632, "arithmetic")
    ids = encode_prompt(problem, char_tokenizer)
    assert ids[0] == char_tokenizer.bos_token_id and char_tokenizer.decode(ids[1:]) == "347+285="
    stops = stop_token_ids(char_tokenizer)
    assert set(stops) == {char_tokenizer.eos_token_id, char_tokenizer.convert_tokens_to_ids("</answer>")}
