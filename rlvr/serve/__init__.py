"""An OpenAI-compatible endpoint over rlvr's rollout engine (`rlvr serve`), for programs that drive a model
through an OpenAI client (the `verifiers` adapter, an agent harness, an evaluation):

- `requests`: request bodies read and checked (a bad field is a 400 that names it);
- `batcher`: the thread that owns the engine and batches concurrent requests into `generate` calls;
- `sessions`: one episode's requests kept as one token stream (for training on exact tokens);
- `app`: the FastAPI application, `EngineServer`, and `ServerThread` (in-process, on a background thread).
`build_server(cfg)` builds one from a run config (`model`, `rollout`).
"""

from __future__ import annotations


def build_server(cfg, model_name: str | None = None, max_batch: int = 64):
    """An `EngineServer` over the engine `rollout.engine` names, sampling from the policy `model` describes;
    `max_tokens` defaults to `rollout.max_new_tokens`, requests without a seed draw from `train.seed`."""
    from pathlib import Path

    from rlvr.models.loading import load_policy, stop_token_ids
    from rlvr.rollout import build_engine
    from rlvr.serve.app import EngineServer

    model, tokenizer = load_policy(cfg.model, seed=cfg.train.seed, training=False)
    engine = build_engine(cfg, model, tokenizer)
    name = model_name or (Path(cfg.model.path).name if cfg.model.path else f"rlvr-{cfg.model.kind}")
    max_len = getattr(model.config, "max_position_embeddings", None) or 2048
    return EngineServer(engine, tokenizer, name, stop_token_ids(tokenizer), max_len,
                        default_max_tokens=cfg.rollout.max_new_tokens, seed=cfg.train.seed, max_batch=max_batch)
