"""`rlvr check --config FILE [--set k=v ...] [--json OUT]`: is there a learning signal for this run?

Loads the policy and task as `rlvr train` would, measures pass rates, the expected share of informative
groups, format, truncation and speed on training problems apart from the training stream, sanity-checks the
verifier, and prints a table with advice (see `rlvr.check`). `--json OUT` writes the numbers. The same check
runs, capped at `check.train_seconds`, at the start of `rlvr train` (`start_of_run`).
"""

from __future__ import annotations

import json
from pathlib import Path

from rlvr.logging.check_section import CHECK_FILE, END_CHECK_FILE


def write_json(report: dict, path: str | Path) -> Path:
    from rlvr.atomic import write_text_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(report, indent=2))
    return path


def in_run(trainer, run_dir: Path, end: bool = False, show: bool = True) -> dict | None:
    """The capped check at the start (or, `end=True`, the end) of `rlvr train`, on the trainer's own engine
    and task (its samples, seeds and problems are the check's own, so the run is unchanged); saved as
    RUN/check.json (RUN/check_end.json: the same problems after training)."""
    from rlvr.check import measure
    from rlvr.check_advice import print_check

    cfg = trainer.cfg
    if cfg.check.train_seconds <= 0:
        return None
    report = measure(cfg, trainer.engine, trainer.tokenizer, trainer.task, cfg.check.problems,
                     cfg.check.train_seconds, cfg.train.seed)
    write_json(report, Path(run_dir) / (END_CHECK_FILE if end else CHECK_FILE))
    if show and cfg.logging.progress and not end:
        print_check(report)
    return report


def handle(args) -> int:
    from rlvr.check import measure
    from rlvr.check_advice import print_check
    from rlvr.config import load_config
    from rlvr.environments import build_environment
    from rlvr.models.loading import compute_dtype, load_policy
    from rlvr.rng import seed_everything
    from rlvr.rollout import build_engine
    from rlvr.rollout.episodes import with_environment
    from rlvr.tasks.registry import build_task

    overrides = list(args.set) + ([f"check.problems={args.problems}"] if args.problems else [])
    cfg = load_config(args.config, overrides)
    if cfg.task.environment:  # its episodes are scored by the environment, which the check does not run
        raise ValueError(f"task.environment: rlvr check samples single answers and cannot run "
                         f"{cfg.task.environment!r} episodes yet; measure with a short `rlvr train` instead")
    seed_everything(cfg.train.seed)
    model, tokenizer = load_policy(cfg.model, seed=cfg.train.seed, training=False)
    device = next(model.parameters()).device
    engine = build_engine(cfg, model, tokenizer, device, compute_dtype(cfg.model, model))
    # a task with tools: samples are episodes, as in `rlvr train`
    environment = build_environment(cfg.task, tokenizer, cfg.rollout.max_new_tokens, cfg.model.response_prefix)
    engine = with_environment(engine, environment, tokenizer)
    task = build_task(cfg.task, eval_size=cfg.eval.num_problems, group_size=cfg.rollout.num_generations)
    report = measure(cfg, engine, tokenizer, task, cfg.check.problems, args.budget, cfg.train.seed)
    print_check(report)
    if args.json:
        print(f"written: {write_json(report, args.json)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("check", help="is there a learning signal? pass rates, informative groups, verifier sanity")
    p.add_argument("--config", "-c", required=True, help="YAML recipe (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value, e.g. --set rollout.temperature=0.7 (repeatable)")
    p.add_argument("--json", metavar="OUT", help="also write the numbers as JSON to OUT")
    p.add_argument("--problems", type=int, default=None, help="training problems to sample (check.problems)")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="stop measuring after about this long (default: no limit)")
    p.set_defaults(func=handle)
