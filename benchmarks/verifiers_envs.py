"""verifiers (0.4) environments end to end on a real small model: episodes of a single-turn taskset and of a
multi-turn environment (tests/environments/verifiers_envs/), played by verifiers' own chat loop against rlvr's
endpoint over SmolLM2-135M-Instruct, nothing downloaded.

    python benchmarks/verifiers_envs.py [--model DIR] [--problems 4] [--samples 4] [--budget 96] [--out DIR]

Needs verifiers, which pins openai<3: run it in an environment of its own (`pip install -e '.[verifiers]'`,
docs/environments.md); elsewhere it says so and exits 0. For each environment it runs `--samples` episodes of
`--problems` tasks through `VerifiersEngine` (the trainer's path) and checks each sample against the engine:
the tokens of its first model turn are the engine's own sample for the session's seed. Writes
OUT/verifiers_envs.json: episodes, turns, model and observation tokens, rewards, samples without a reward (and
why), seconds, and a transcript per environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this folder's verifiers.py (rlvr's own verifier benchmark) would shadow the verifiers package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "environments" / "verifiers_envs"))

ENVIRONMENTS = ("verifiers:rlvr_vf_digit", "verifiers:rlvr_vf_guess")


def run(spec: str, model, tokenizer, args) -> dict:
    import torch

    from rlvr.config import TaskConfig
    from rlvr.environments import build_environment
    from rlvr.models.loading import encode_prompt, stop_token_ids
    from rlvr.rollout.base import SamplingParams, sample_seed
    from rlvr.rollout.episodes import generate_for, with_environment
    from rlvr.rollout.torch_engine import TorchEngine
    from rlvr.tasks.registry import build_task

    cfg = TaskConfig(environment=spec)
    cfg.episode.max_turns = 4
    base = TorchEngine(model, tokenizer.pad_token_id)
    engine = with_environment(base, build_environment(cfg, tokenizer, args.budget), tokenizer)
    task = build_task(cfg)
    problems = [task.train_problem(i) for i in range(args.problems)]
    prompts = [encode_prompt(p, tokenizer) for p in problems]
    seeds = list(range(len(problems)))
    sampling = SamplingParams(args.samples, args.budget, 1.0, 1.0, stop_token_ids(tokenizer))
    start = time.time()
    groups = generate_for(engine, problems, prompts, sampling, seeds=seeds)
    seconds = time.time() - start
    engine.close()
    samples = [c for g in groups for c in g]
    same_first_turn = 0
    for i, group in enumerate(groups):  # the first turn is the engine's own sample for the session's seed
        for j, c in enumerate(group):
            first = c.mask.index(0) if 0 in c.mask else len(c.mask)
            own = base.generate([c.prompt_ids], dataclasses.replace(sampling, n=1),
                                seeds=[sample_seed(sample_seed(seeds[i], j), 0)])[0][0]
            same_first_turn += own.token_ids[:first] == c.token_ids[:first]
    scored = [c.episode.env_score.reward for c in samples if c.episode.env_score is not None]
    unscored = [c.episode.env_error for c in samples if c.episode.env_score is None]
    example = max(samples, key=lambda c: (c.episode.env_score is not None, c.episode.turns))
    return {
        "environment": spec, "episodes": len(samples), "seconds": round(seconds, 1),
        "turns_mean": sum(c.episode.turns for c in samples) / len(samples),
        "model_tokens": sum(sum(c.mask) for c in samples),
        "observation_tokens": sum(len(c.mask) - sum(c.mask) for c in samples),
        "prompt_is_rlvrs_rendering": sum(c.prompt_ids == p for g, p in zip(groups, prompts) for c in g),
        "first_turn_is_the_engines_sample": same_first_turn,
        "rewarded": len(scored), "reward_mean": sum(scored) / len(scored) if scored else None,
        "rewards": scored, "no_reward": unscored, "batching": dict(engine.server.batcher.stats),
        "example": {"prompt": tokenizer.decode(example.prompt_ids), "transcript": example.episode.transcript,
                    "score": None if example.episode.env_score is None else example.episode.env_score.to_dict()},
        "torch_threads": torch.get_num_threads(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--budget", type=int, default=96, help="tokens per episode (model turns and observations)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    if importlib.util.find_spec("verifiers") is None:
        print("verifiers is not installed: skipped (pip install -e '.[verifiers]' in an environment of its own; "
              "it downgrades openai)")
        return 0
    import torch

    from rlvr.config import ModelConfig
    from rlvr.models.loading import load_policy

    torch.manual_seed(0)
    model, tokenizer = load_policy(ModelConfig(kind="hf", path=args.model, device="cpu", dtype="float32"),
                                   training=False)
    results = [run(spec, model.eval(), tokenizer, args) for spec in ENVIRONMENTS]
    out = Path(args.out) / "verifiers_envs.json"
    out.write_text(json.dumps({"model": Path(args.model).name, "args": vars(args), "results": results}, indent=1))
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k not in ("example", "rewards", "no_reward")}))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
