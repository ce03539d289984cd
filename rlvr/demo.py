"""`rlvr demo`: the chef who learns by watching, then by tasting (the stories live in `rlvr/stories/`).

`run_pretrain` is the imitation phase on its own (`rlvr pretrain`): a tiny Llama, a character tokenizer and
the task's worked solutions, all built here; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from rlvr.config import Config
from rlvr.evaluate import evaluate_held_out
from rlvr.logging.metrics import MetricsLogger
from rlvr.logging.progress import Progress
from rlvr.models.loading import compute_dtype, encode_prompt, load_policy, save_policy
from rlvr.pretrain import build_corpus, pretrain
from rlvr.rng import seed_everything
from rlvr.rollout.torch_engine import TorchEngine, inference_copy
from rlvr.tasks.registry import build_task


def run_pretrain(cfg: Config, out: Path, logger: MetricsLogger, task=None, progress: bool = True) -> dict:
    """Imitation phase; saves the policy to `out/pretrained` and returns data and held-out accuracy."""
    seed_everything(cfg.train.seed)
    task = task or build_task(cfg.task, eval_size=cfg.eval.num_problems)
    model, tokenizer = load_policy(cfg.model, seed=cfg.train.seed, master_weights=cfg.train.master_weights)
    dtype = compute_dtype(cfg.model, model)

    def encode(p):
        return encode_prompt(p, tokenizer, cfg.model.system_prompt)

    # a task with tools: its transcripts' observations are not imitated (masked, as the RL learner masks them)
    seqs, starts, data_accuracy, _, masks = build_corpus(task, tokenizer, encode, cfg.pretrain.num_examples,
                                                         cfg.train.seed, observations=bool(cfg.task.tools))
    with Progress(cfg.pretrain.steps, "pretrain (imitation)", enabled=progress) as bar:

        def on_step(step, metrics):
            if step % 10 == 0 or step == cfg.pretrain.steps:
                logger.log(step, {"phase": "pretrain", **metrics})
                bar.update(step, {"loss": metrics["pretrain/loss"]})

        stats = pretrain(model, tokenizer, (seqs, starts, masks), cfg.pretrain, seed=cfg.train.seed, on_step=on_step,
                         compute_dtype=dtype)
    save_policy(model, tokenizer, out / "pretrained")
    engine = TorchEngine(inference_copy(model, dtype), tokenizer.pad_token_id, tokenizer=tokenizer)
    # Greedy, on prompts encoded as its corpus was (without the response prefix).
    result = evaluate_held_out(cfg, engine, tokenizer, task, keep=8, with_prefix=False, greedy_only=True)
    result.pop("examples")
    logger.log_eval(0, {"phase": "pretrain", **result})
    return {"data_accuracy": data_accuracy, "pretrain_accuracy": result["accuracy"], "pretrain_loss": stats["loss"],
            "pretrain_seconds": stats["seconds"]}


def run_demo(cfg: Config, out: str | Path, progress: bool = True) -> dict:
    """The chef story (`rlvr demo`'s default); writes `out/summary.json` and `out/report.html`."""
    from rlvr.stories import run_story

    return run_story("chef", cfg, out, progress)
