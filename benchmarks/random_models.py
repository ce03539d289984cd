"""Models of real shapes with random weights, for benchmarks on a machine no checkpoint can reach (the lent GPU
machine takes 64 MiB from here; a 1.5B checkpoint is 3 GB).

    python benchmarks/random_models.py --tokenizer DIR --out DIR [--shapes smollm2-135m qwen2.5-0.5b ...]
                                       [--layers N] [--device cuda]

Each shape is the architecture of a public checkpoint, written from its published config (sizes only: no
weights): `OUT/<shape>/` gets that config with random weights (seed 0, bf16) and the tokenizer of `--tokenizer`
(SmolLM2's, which `make gpu-kit` puts in `.gpu/tokenizer`). A shape whose vocabulary is larger than the
tokenizer's keeps its own size: the embedding and output layer cost what they cost in the real model, prompts
are tokenized with ids inside both, and ids the tokenizer does not know decode to nothing (random weights write
nonsense either way: the benchmarks that use these run at fixed length, end-of-sequence ignored). The token ids
of the config (bos, eos, pad) are the tokenizer's. `--layers N` keeps only N decoder layers: a smoke test of a
script on a CPU, never a measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Sizes from each checkpoint's published config.json (Hugging Face Hub); what is not named takes the
# architecture's default.
SHAPES: dict[str, dict] = {
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=True),
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True, use_sliding_window=False),
    "qwen2.5-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True, use_sliding_window=False),
}


def build(shape: str, tokenizer_dir: Path, out: Path, layers: int | None = None, device: str = "cpu") -> Path:
    """Write `out/shape`: the shape's config with random bf16 weights (seed 0) and the tokenizer. Returns the dir."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rlvr.models.tiny import count_parameters

    if shape not in SHAPES:
        raise SystemExit(f"random_models: unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    sizes = dict(SHAPES[shape])
    if layers is not None:
        sizes["num_hidden_layers"] = layers
    if sizes["vocab_size"] < len(tok):
        raise SystemExit(f"random_models: {shape}'s vocabulary ({sizes['vocab_size']}) is smaller than the "
                         f"tokenizer's ({len(tok)}): prompts would hold ids the model has no embedding for")
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    config = AutoConfig.for_model(**sizes, **ids)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    target = out / shape
    model.save_pretrained(target)
    tok.save_pretrained(target)
    n = count_parameters(model)
    print(f"{shape}: {n / 1e6:.1f}M parameters ({sizes['num_hidden_layers']} layers), random weights -> {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", type=Path, required=True, help="a tokenizer directory (SmolLM2's)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--layers", type=int, default=None, help="keep only this many decoder layers (smoke tests)")
    ap.add_argument("--device", default="cpu", help="where the random weights are drawn (cuda: faster for 1.5B)")
    args = ap.parse_args(argv)
    for shape in args.shapes:
        build(shape, args.tokenizer, args.out, args.layers, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
