"""Loading the run configuration: defaults, then a base dict, a YAML file and `--set a.b=c` overrides, the
algorithm preset filled in, every value coerced to its field's type and checked before any work starts.
An unknown key, a wrong type or an impossible value raises `ConfigError` with the dotted key, what was
given and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from rlvr.config.presets import apply_preset
from rlvr.config.schema import Config


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


# --- building and checking -------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):  # e.g. the tasks of task.mixture
        return _build(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"unknown key '{where}'; allowed keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key)
            continue
        choices = fields[name].metadata.get("choices")
        if isinstance(value, bool) and tp is str and {"on", "off"} <= set(choices or ()):
            value = "on" if value else "off"  # YAML 1.1 (PyYAML, --set) reads a bare on / off as a boolean
        value = _coerce(key, value, tp)
        if choices and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        kwargs[name] = value
    return cls(**kwargs)


def _require(cond: bool, key: str, msg: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}, got {value!r}")


def validate(cfg: Config) -> Config:
    """Refuse impossible values (the message names the key and what would be right)."""
    positive = {
        "model.hidden_size": cfg.model.hidden_size,
        "model.num_layers": cfg.model.num_layers,
        "model.num_heads": cfg.model.num_heads,
        "model.intermediate_size": cfg.model.intermediate_size,
        "model.max_position_embeddings": cfg.model.max_position_embeddings,
        "task.difficulty": cfg.task.difficulty,
        "rollout.num_generations": cfg.rollout.num_generations,
        "rollout.max_new_tokens": cfg.rollout.max_new_tokens,
        "algorithm.ppo_epochs": cfg.algorithm.ppo_epochs,
        "algorithm.max_sampling_draws": cfg.algorithm.max_sampling_draws,
        "pretrain.batch_size": cfg.pretrain.batch_size,
        "pretrain.num_examples": cfg.pretrain.num_examples,
        "train.prompts_per_step": cfg.train.prompts_per_step,
        "train.micro_batch_size": cfg.train.micro_batch_size,
        "eval.num_problems": cfg.eval.num_problems,
        "distributed.rollout_workers": cfg.distributed.rollout_workers,
        "distributed.learners": cfg.distributed.learners,
        "distributed.timeout_s": cfg.distributed.timeout_s,
    }
    if cfg.eval.max_new_tokens is not None:
        positive["eval.max_new_tokens"] = cfg.eval.max_new_tokens
    for key, value in positive.items():
        _require(value > 0, key, "must be a positive integer", value)
    non_negative = {
        "model.lora_r": cfg.model.lora_r,
        "model.lora_alpha": cfg.model.lora_alpha,
        "pretrain.steps": cfg.pretrain.steps,
        "pretrain.warmup_steps": cfg.pretrain.warmup_steps,
        "train.steps": cfg.train.steps,
        "train.warmup_steps": cfg.train.warmup_steps,
        "train.checkpoint_every": cfg.train.checkpoint_every,
        "eval.every": cfg.eval.every,
        "eval.samples": cfg.eval.samples,
        "algorithm.kl_coef": cfg.algorithm.kl_coef,
        "algorithm.entropy_coef": cfg.algorithm.entropy_coef,
        "algorithm.overlong_buffer": cfg.algorithm.overlong_buffer,
        "task.format_reward": cfg.task.format_reward,
        "task.weight": cfg.task.weight,
        "task.curriculum": cfg.task.curriculum,
        "train.weight_decay": cfg.train.weight_decay,
        "train.micro_batch_tokens": cfg.train.micro_batch_tokens,
        "logging.samples_per_step": cfg.logging.samples_per_step,
        "distributed.worker_cpus": cfg.distributed.worker_cpus,
        "distributed.learner_cpus": cfg.distributed.learner_cpus,
        "distributed.worker_gpus": cfg.distributed.worker_gpus,
        "distributed.learner_gpus": cfg.distributed.learner_gpus,
        "distributed.max_staleness": cfg.distributed.max_staleness,
        "distributed.prefetch_steps": cfg.distributed.prefetch_steps,
        "distributed.max_restarts": cfg.distributed.max_restarts,
        "distributed.verifiers": cfg.distributed.verifiers,
        "distributed.verifier_cpus": cfg.distributed.verifier_cpus,
    }
    for key, value in non_negative.items():
        _require(value >= 0, key, "must be >= 0", value)
    _require(cfg.model.hidden_size % cfg.model.num_heads == 0, "model.hidden_size",
             f"must be divisible by model.num_heads ({cfg.model.num_heads})", cfg.model.hidden_size)
    _require(0.0 <= cfg.model.lora_dropout < 1.0, "model.lora_dropout", "must be in [0, 1)", cfg.model.lora_dropout)
    for key in ("max_infra_error_rate", "max_verifier_error_rate"):
        rate = getattr(cfg.train, key)
        _require(0.0 <= rate <= 1.0, f"train.{key}", "must be in [0, 1] (a share of a step's samples)", rate)
    _require(0.0 < cfg.task.blind_spot <= 1.0, "task.blind_spot", "must be in (0, 1]", cfg.task.blind_spot)
    _require(0.0 <= cfg.task.flaw_rate <= cfg.task.blind_spot, "task.flaw_rate",
             f"must be in [0, task.blind_spot={cfg.task.blind_spot}] (the teacher errs only in its blind spot)",
             cfg.task.flaw_rate)
    _require(cfg.task.format_reward < 1.0, "task.format_reward",
             "must stay below the correctness reward of 1.0", cfg.task.format_reward)
    _require(cfg.rollout.temperature >= 0.0, "rollout.temperature", "must be >= 0 (0 means greedy)",
             cfg.rollout.temperature)
    _require(0.0 < cfg.rollout.top_p <= 1.0, "rollout.top_p", "must be in (0, 1]", cfg.rollout.top_p)
    _require(cfg.train.lr > 0, "train.lr", "must be > 0", cfg.train.lr)
    _require(cfg.pretrain.lr > 0, "pretrain.lr", "must be > 0", cfg.pretrain.lr)
    _require(cfg.train.grad_clip >= 0, "train.grad_clip", "must be >= 0 (0 disables clipping)", cfg.train.grad_clip)
    _require(0.0 <= cfg.algorithm.clip_low < 1.0, "algorithm.clip_low", "must be in [0, 1)", cfg.algorithm.clip_low)
    _require(cfg.algorithm.clip_high >= 0.0, "algorithm.clip_high", "must be >= 0", cfg.algorithm.clip_high)
    if cfg.algorithm.dual_clip is not None:
        _require(cfg.algorithm.dual_clip > 1.0, "algorithm.dual_clip", "must be > 1 (e.g. 3.0) or null",
                 cfg.algorithm.dual_clip)
    _require(cfg.algorithm.tis_cap >= 1.0, "algorithm.tis_cap", "must be >= 1 (the importance weight is capped "
             "at it; e.g. 2.0)", cfg.algorithm.tis_cap)
    if cfg.algorithm.seq_mask_cap is not None:
        _require(cfg.algorithm.seq_mask_cap > 1.0, "algorithm.seq_mask_cap", "must be > 1 (completions whose ratio "
                 "leaves [1/C, C] are masked; e.g. 2.0) or null", cfg.algorithm.seq_mask_cap)
    for i, k in enumerate(cfg.eval.pass_k):
        _require(k >= 1, f"eval.pass_k[{i}]", "must be >= 1", k)
        if cfg.eval.samples:
            _require(k <= cfg.eval.samples, f"eval.pass_k[{i}]", f"must be <= eval.samples ({cfg.eval.samples})", k)
    _require(0.0 < cfg.rollout.vllm_gpu_memory_utilization <= 1.0, "rollout.vllm_gpu_memory_utilization",
             "must be in (0, 1]", cfg.rollout.vllm_gpu_memory_utilization)
    if cfg.rollout.engine == "vllm":
        _require(cfg.model.lora_r == 0, "model.lora_r", "must be 0 with rollout.engine: vllm (LoRA sampling "
                 "through vLLM is not supported yet)", cfg.model.lora_r)
    if cfg.distributed.sharding == "fsdp":
        _require(cfg.model.lora_r == 0, "model.lora_r", "must be 0 with distributed.sharding: fsdp (a LoRA "
                 "adapter is small: use ddp)", cfg.model.lora_r)
    if cfg.train.compile:  # a sharded model gathers its weights inside its own forward: nothing to compile
        _require(cfg.distributed.sharding != "fsdp" or cfg.distributed.backend == "none", "train.compile",
                 "cannot be combined with distributed.sharding: fsdp (use ddp, or train.compile: false)", True)
    if cfg.distributed.async_rollouts:
        _require(cfg.distributed.prefetch_steps >= 1, "distributed.prefetch_steps",
                 "must be >= 1 with distributed.async_rollouts (how many steps are generated ahead)",
                 cfg.distributed.prefetch_steps)
    for key, stops in (("rollout.stop", cfg.rollout.stop), ("eval.stop", cfg.eval.stop or [])):
        _require(all(isinstance(s, str) and s for s in stops), key, "must be a list of non-empty strings", stops)
    if cfg.task.tools or cfg.task.environment:
        from rlvr.environments.config import check_episode_config

        _require(not cfg.rollout.stop and not cfg.eval.stop, "rollout.stop",
                 "is single-turn only: a multi-turn turn ends at its tools' pause strings", cfg.rollout.stop)

        try:
            check_episode_config(cfg.task, cfg.rollout.max_new_tokens)
            if cfg.task.environment:
                from rlvr.environments.adapters import check_environment_config

                check_environment_config(cfg.task)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if cfg.task.environment:  # adapted environments run in-process with the torch engine only
            _require(cfg.rollout.engine == "torch", "rollout.engine", "must be torch with task.environment",
                     cfg.rollout.engine)
            _require(cfg.distributed.backend == "none", "distributed.backend", "must be none with task.environment",
                     cfg.distributed.backend)
    _require(cfg.check.problems > 0, "check.problems", "must be a positive integer", cfg.check.problems)
    _require(cfg.check.train_seconds >= 0, "check.train_seconds", "must be >= 0 (0 turns the check off)",
             cfg.check.train_seconds)
    _require(0.0 <= cfg.check.min_informative_share <= 1.0, "check.min_informative_share", "must be in [0, 1]",
             cfg.check.min_informative_share)
    _require(0.0 <= cfg.task.curriculum_low <= 1.0, "task.curriculum_low", "must be in [0, 1]", cfg.task.curriculum_low)
    if cfg.algorithm.screening:
        _require(2 <= cfg.algorithm.screen_samples < cfg.rollout.num_generations, "algorithm.screen_samples",
                 f"must be >= 2 (some right and some wrong) and < rollout.num_generations "
                 f"({cfg.rollout.num_generations})", cfg.algorithm.screen_samples)
        _require(cfg.algorithm.screen_rounds >= 1, "algorithm.screen_rounds", "must be a positive integer",
                 cfg.algorithm.screen_rounds)
        _require(cfg.algorithm.screen_oversample >= 1, "algorithm.screen_oversample", "must be a positive integer",
                 cfg.algorithm.screen_oversample)
        _require(not cfg.algorithm.dynamic_sampling, "algorithm.screening", "cannot be combined with "
                 "algorithm.dynamic_sampling (screening already trains only on mixed groups)", True)
        _require(not cfg.distributed.async_rollouts, "algorithm.screening", "cannot be combined with "
                 "distributed.async_rollouts (which prompts get a full group is decided from the screen's results, "
                 "so nothing can be prefetched)", True)
    if cfg.model.kind != "tiny":
        _require(bool(cfg.model.path), "model.path", f"is required when model.kind is {cfg.model.kind!r}",
                 cfg.model.path)
    return cfg


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: '{part}' is not a section")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`train.lr=3e-4` -> ("train.lr", 0.0003); the value is read as YAML (numbers, bools, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads 3e-4 as a string (it wants 3.0e-4); numbers written either way are accepted.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return key.strip(), value


def _fix_yaml_floats(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _fix_yaml_floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_yaml_floats(v) for v in node]
    if isinstance(node, str):
        try:
            return float(node) if ("e" in node.lower() and node[0] in "0123456789.-+") else node
        except ValueError:
            return node
    return node


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> Config:
    """Build a checked `Config` from defaults, then `base`, then a YAML file, then `--set` overrides."""
    data: dict[str, Any] = {}
    if base:
        data = _fix_yaml_floats(base)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        _merge(data, _fix_yaml_floats(loaded))
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    data = apply_preset(data)
    try:
        cfg = _build(Config, data, "")
    except TypeError as e:  # a section given as a scalar
        raise ConfigError(str(e)) from e
    return validate(cfg)


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def save_config(cfg: Config, path: str | Path) -> None:
    """Write `cfg` as YAML (every field, so the run can be repeated or resumed from it)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
