"""The `rlvr` command: thin wrappers that parse, build and call.

    rlvr demo [--story S] [--out DIR] [--seed N]  a claim measured end to end (chef, elicit, hacking, zero, tools)
    rlvr train --config FILE [--set k=v ...]  RL training (`--resume RUN_DIR` continues a run, `--ray` scales out)
    rlvr pretrain --config FILE               imitation on the task's worked solutions
    rlvr eval --model DIR --config FILE       greedy accuracy and pass@k on held-out problems
    rlvr report RUN_DIR [RUN_DIR ...]         write RUN_DIR/report.html, or overlay runs (seeds as a band)
    rlvr tasks [show NAME]                    list tasks, or sample a few problems of one
    rlvr check --config FILE [--json OUT]     is there a learning signal? (pass rates, informative groups)
    rlvr serve --config FILE [--port P]       the policy behind an OpenAI-compatible endpoint (token ids, log-probs)
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

from rlvr.config import ConfigError, load_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def _default_demo_config(name: str = "demo.yaml") -> Path | None:
    for candidate in (CONFIG_DIR / name, Path(__file__).resolve().parent / "configs" / name):
        if candidate.exists():
            return candidate
    return None


def _add_config_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--config", "-c", required=required, help="YAML recipe (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")


def _print_table(rows: list[tuple[str, str]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def cmd_demo(args) -> int:
    from rlvr.stories import run_story, story_module

    module = story_module(args.story)
    overrides = list(args.set)
    if args.seed is not None:
        overrides += [f"train.seed={args.seed}", f"task.seed={args.seed}"]
    cfg = load_config(args.config or _default_demo_config(module.CONFIG), overrides)
    out = Path(args.out or ("runs/demo" if args.story == "chef" else f"runs/story-{args.story}"))
    summary = run_story(args.story, cfg, out, progress=not args.no_progress)
    rows = [(k, f"{v:.1%}" if isinstance(v, float) and ("accuracy" in k or "rate" in k or "share" in k) else str(v))
            for k, v in summary.items()]
    _print_table(rows, f"rlvr demo --story {args.story}: {module.CLAIM}")
    print(f"summary: {out / 'summary.json'}\nreport:  {out / 'report.html'}")
    return 0


def make_trainer(cfg, run_dir: Path, resume: bool = False):
    """The single-process `Trainer`, or with `distributed.backend: ray` the same loop on a Ray cluster."""
    if cfg.distributed.backend == "ray":
        from rlvr.distributed.trainer import RayTrainer

        return RayTrainer(cfg, run_dir, resume=resume)
    from rlvr.trainer import Trainer

    return Trainer(cfg, run_dir, resume=resume)


def cmd_train(args) -> int:
    from rlvr.distributed import LearnerLost
    from rlvr.logging.report import write_report

    overrides = list(args.set)
    if args.ray:  # local: start a cluster here; auto: the one this node belongs to; or an address
        address = "" if args.ray == "local" else args.ray
        overrides += ["distributed.backend=ray", f"distributed.address={address!r}"]
    if args.resume:
        run_dir = Path(args.resume)
        cfg = load_config(run_dir / "config.yaml", overrides)
        trainer = make_trainer(cfg, run_dir, resume=True)
    else:
        if not args.config:
            raise ConfigError("rlvr train needs --config FILE (or --resume RUN_DIR)")
        cfg = load_config(args.config, overrides)
        run_dir = Path(args.out or cfg.train.out_dir)
        trainer = make_trainer(cfg, run_dir)
    from rlvr.commands.check import in_run

    try:
        if not args.resume and not args.no_check:  # is there a signal? (own problems and seeds: the run is unchanged)
            in_run(trainer, run_dir, show=not args.no_progress)
        last = trainer.run(progress=not args.no_progress)
        result = trainer.run_eval("final")
        if not args.no_check and (run_dir / "check.json").exists():  # pass rates on the same problems, after
            in_run(trainer, run_dir, end=True)
    except LearnerLost as e:
        trainer.logger.close()
        print(f"rlvr train: {e}", file=sys.stderr)
        return 1
    finally:
        trainer.close()
    trainer.logger.close()
    write_report(run_dir)
    print(json.dumps({"step": trainer.step_count, "reward/mean": last.get("reward/mean"),
                      "eval_accuracy": result["accuracy"], "run_dir": str(run_dir)}))
    return 0


def cmd_pretrain(args) -> int:
    from rlvr.demo import run_pretrain
    from rlvr.logging.metrics import MetricsLogger

    cfg = load_config(args.config or _default_demo_config(), args.set)
    out = Path(args.out or cfg.train.out_dir)
    logger = MetricsLogger(out, config=cfg.to_dict())
    result = run_pretrain(cfg, out, logger, progress=not args.no_progress)
    logger.close()
    print(json.dumps({**result, "model": str(out / "pretrained")}))
    return 0


def cmd_eval(args) -> int:
    import dataclasses

    import torch

    from rlvr.evaluate import evaluate_held_out
    from rlvr.models.loading import load_policy
    from rlvr.rollout.torch_engine import TorchEngine
    from rlvr.tasks.registry import build_task

    cfg = load_config(args.config or _default_demo_config(), args.set)
    model_cfg = dataclasses.replace(cfg.model, kind="gguf" if args.model.endswith(".gguf") else "hf", path=args.model)
    model, tokenizer = load_policy(model_cfg, training=False)
    task = build_task(cfg.task, eval_size=cfg.eval.num_problems)
    engine = TorchEngine(model, tokenizer.pad_token_id, tokenizer=tokenizer)  # reads eval.stop strings
    result = evaluate_held_out(cfg, engine, tokenizer, task, torch.Generator().manual_seed(cfg.train.seed),
                               keep=args.show)
    examples = result.pop("examples")
    for ex in examples:
        print(f"{'OK ' if ex['correct'] else 'BAD'} {ex['prompt']!r} -> {ex['completion']!r}")
    print(json.dumps(result, indent=2))
    return 0


def cmd_report(args) -> int:
    from rlvr.logging.report import write_report

    if len(args.run_dirs) == 1 and not args.out and not (Path(args.run_dirs[0]) / "story.jsonl").exists():
        print(write_report(args.run_dirs[0]))
        return 0
    if len(args.run_dirs) == 1 and not args.out:  # a story: its own page again
        from rlvr.stories.report import write_story_report

        print(write_story_report(args.run_dirs[0]))
        return 0
    from rlvr.logging.compare import write_compare

    print(write_compare(args.run_dirs, args.out or Path(args.run_dirs[0]).parent / "compare.html"))
    return 0


def cmd_tasks(args) -> int:
    from rlvr.commands.tasks_extra import cmd_tasks as full_listing

    return full_listing(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr", description="Reinforcement learning on verifiable rewards.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="a story measured end to end on the tiny built-in model (default: chef)")
    _add_config_args(p)
    p.add_argument("--story", default="chef", choices=["chef", "elicit", "hacking", "zero", "tools"],
                   help="chef (imitation vs RL, the default), elicit, hacking or zero (see docs/stories.md)")
    p.add_argument("--out", default=None, help="run directory (default runs/demo, or runs/story-NAME)")
    p.add_argument("--seed", type=int, default=None, help="seed for the task, model and sampling")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="RL training from a config")
    _add_config_args(p)
    p.add_argument("--out", help="run directory (default train.out_dir)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint")
    p.add_argument("--ray", metavar="local|auto|ADDRESS",
                   help="run on Ray: start a local cluster, join this node's (auto) or one at ADDRESS "
                        "(sets distributed.backend=ray; see docs/scale.md)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the signal check before training (also: --set check.train_seconds=0)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="imitation on worked solutions (tiny models)")
    _add_config_args(p)
    p.add_argument("--out", help="run directory (default train.out_dir)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("eval", help="held-out accuracy and pass@k of a saved policy")
    _add_config_args(p)
    p.add_argument("--model", required=True, help="a Hugging Face model directory or a .gguf file")
    p.add_argument("--show", type=int, default=5, help="print this many completions")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("report", help="write RUN_DIR/report.html, or overlay several runs (seeds as a band)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", help="with several runs: the overlay page (default: compare.html beside the first)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tasks", help="list tasks; `tasks show NAME` samples problems")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("-n", type=int, default=3, help="problems to show")
    p.set_defaults(func=cmd_tasks)

    # Sub-commands contributed by other modules (e.g. `rlvr verify`) register themselves here.
    import rlvr.commands

    for info in pkgutil.iter_modules(rlvr.commands.__path__):
        module = importlib.import_module(f"rlvr.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"rlvr {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
