"""Engine throughput on multi-turn episodes against single-turn generation of the same token count.

The demo's tiny Llama (random weights, sharpened so that it writes varied text) samples B rows; in the
episode run every row pauses wherever it writes one of a few common characters and gets a 12-token
observation back, for up to 4 turns, within a 72-token budget. The single-turn run then generates exactly as
many tokens per row as the episodes' mean completion (model + observation tokens, no stop token), from the
same prompts. Reported: completion tokens per second of each, forward calls, and tokens fed to the model.
Usage: OMP_NUM_THREADS=1 python benchmarks/episodes_throughput.py [--rows-per-prompt 8] [--prompts 16]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from rlvr.environments.base import Environment, Episode
from rlvr.models.tiny import build_tiny_llama
from rlvr.models.tokenizer import build_char_tokenizer
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.episodes import EpisodeEngine
from rlvr.rollout.torch_engine import TorchEngine


class Chatty(Episode):
    def respond(self, turn: str) -> str | None:
        self.record.turns += 1
        return None if self.record.turns >= 4 else "<result>1234567</result>"[:12]


class ChattyEnv(Environment):
    pause_strings = ("a", "e", "1", "x")

    def open(self, problem):
        return Chatty()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--rows-per-prompt", type=int, default=8)
    ap.add_argument("--budget", type=int, default=72)
    ap.add_argument("--feed-chunk", type=int, default=None, help="observation tokens a row feeds per forward call "
                    "(default: the engine's: 1 on a CPU)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, max_position_embeddings=128).eval()  # the demo's size (0.87 M)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    prompts = [tok(f"{100 + 37 * i}*{10 + i}=", add_special_tokens=False)["input_ids"] for i in range(args.prompts)]
    seeds = list(range(args.prompts))
    episodes = EpisodeEngine(TorchEngine(model, tok.pad_token_id, cache="dynamic"), ChattyEnv(), tok,
                             feed_chunk=args.feed_chunk)
    t0 = time.perf_counter()
    groups = episodes.generate(prompts, SamplingParams(args.rows_per_prompt, args.budget, 1.0, 1.0, ()), seeds=seeds)
    t_ep = time.perf_counter() - t0
    comps = [c for g in groups for c in g]
    tokens = sum(len(c.token_ids) for c in comps)
    observation = tokens - sum(sum(c.mask) for c in comps)
    per_row = round(tokens / len(comps))
    rows = {}
    for cache in ("dynamic", "static"):
        plain = TorchEngine(model, tok.pad_token_id, cache=cache)
        t0 = time.perf_counter()
        out = plain.generate(prompts, SamplingParams(args.rows_per_prompt, per_row, 1.0, 1.0, ()), seeds=seeds)
        t = time.perf_counter() - t0
        n = sum(len(c.token_ids) for g in out for c in g)
        rows[f"single_turn_{cache}"] = {"seconds": round(t, 3), "tokens": n, "tokens_per_s": round(n / t, 1)}
    result = {
        "rows": len(comps), "budget": args.budget, "feed_chunk": episodes.feed_chunk,
        "episodes": {"seconds": round(t_ep, 3), "tokens": tokens, "observation_tokens": observation,
                     "observations": sum(role == "observation" for c in comps for role, _, _ in c.episode.segments),
                     "tokens_per_s": round(tokens / t_ep, 1), **episodes.stats},
        "single_turn_tokens_per_row": per_row, **rows,
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
