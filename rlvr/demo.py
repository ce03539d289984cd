"""`rlvr demo`: the chef who learns by watching, then by tasting.

pretrain on flawed worked solutions -> evaluate -> GRPO on the binary reward -> evaluate -> report.
Everything is built here: a tiny Llama, a character tokenizer, the task's problems. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from rlvr.config import Config, save_config
from rlvr.evaluate import evaluate_held_out
from rlvr.logging.metrics import MetricsLogger
from rlvr.logging.progress import Progress
from rlvr.logging.report import write_report
from rlvr.models.loading import compute_dtype, encode_prompt, load_policy, save_policy
from rlvr.pretrain import build_corpus, pretrain
from rlvr.rng import seed_everything
from rlvr.rollout.torch_engine import TorchEngine, inference_copy
from rlvr.tasks.registry import build_task
from rlvr.trainer import Trainer


def run_pretrain(cfg: Config, out: Path, logger: MetricsLogger, task=None, progress: bool = True) -> dict:
    """Imitation phase; saves the policy to `out/pretrained` and returns data and held-out accuracy."""
    seed_everything(cfg.train.seed)
    task = task or build_task(cfg.task, eval_size=cfg.eval.num_problems)
    model, tokenizer = load_policy(cfg.model, seed=cfg.train.seed, master_weights=cfg.train.master_weights)
    dtype = compute_dtype(cfg.model, model)

    def encode(p):
        return encode_prompt(p, tokenizer, cfg.model.system_prompt)

    seqs, starts, data_accuracy, _ = build_corpus(task, tokenizer, encode, cfg.pretrain.num_examples, cfg.train.seed)
    with Progress(cfg.pretrain.steps, "pretrain (imitation)", enabled=progress) as bar:

        def on_step(step, metrics):
            if step % 10 == 0 or step == cfg.pretrain.steps:
                logger.log(step, {"phase": "pretrain", **metrics})
                bar.update(step, {"loss": metrics["pretrain/loss"]})

        stats = pretrain(model, tokenizer, (seqs, starts), cfg.pretrain, seed=cfg.train.seed, on_step=on_step,
                         compute_dtype=dtype)
    save_policy(model, tokenizer, out / "pretrained")
    engine = TorchEngine(inference_copy(model, dtype), tokenizer.pad_token_id)
    # Greedy, on prompts encoded as its corpus was (without the response prefix).
    result = evaluate_held_out(cfg, engine, tokenizer, task, keep=8, with_prefix=False, greedy_only=True)
    result.pop("examples")
    logger.log_eval(0, {"phase": "pretrain", **result})
    return {"data_accuracy": data_accuracy, "pretrain_accuracy": result["accuracy"], "pretrain_loss": stats["loss"],
            "pretrain_seconds": stats["seconds"]}


def run_demo(cfg: Config, out: str | Path, progress: bool = True) -> dict:
    """The whole story on one config; writes `out/summary.json` and `out/report.html`."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    logger = MetricsLogger(out, config=cfg.to_dict())
    task = build_task(cfg.task, eval_size=cfg.eval.num_problems)
    pre = run_pretrain(cfg, out, logger, task, progress)

    rl_cfg = dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, kind="hf", path=str(out / "pretrained")),
        train=dataclasses.replace(cfg.train, out_dir=str(out)),
    )
    trainer = Trainer(rl_cfg, out, task=task, logger=logger)
    trainer.run(progress=progress)
    final = trainer.run_eval("rl")
    summary = {
        "task": cfg.task.name,
        "data_accuracy": round(pre["data_accuracy"], 4),
        "pretrain_accuracy": round(pre["pretrain_accuracy"], 4),
        "rl_accuracy": round(final["accuracy"], 4),
        "eval_problems": final["n"],
        "rl_steps": trainer.step_count,
        "pretrain_steps": cfg.pretrain.steps,
        "seed": cfg.train.seed,
        "wall_seconds": round(time.time() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    logger.close()
    write_report(out)
    return summary
