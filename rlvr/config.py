"""Run configuration: one typed dataclass per section, loaded from YAML, overridable with `--set a.b=c`.

Every value is checked before any work starts. An unknown key, a wrong type or an impossible value raises
`ConfigError` with the dotted key, what was given and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def _choice(default: Any, *choices: Any) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass
class ModelConfig:
    """The policy. `kind: tiny` builds a small Llama from the sizes below; `hf` loads `path`; `gguf` loads
    `path` (a .gguf file) through transformers."""

    kind: str = _choice("tiny", "tiny", "hf", "gguf")
    path: str | None = None
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 128
    dtype: str = _choice("auto", "auto", "float32", "bfloat16", "float16")
    device: str = "auto"
    system_prompt: str | None = None
    response_prefix: str | None = None  # the reply starts with this text (e.g. "<think>"); verified with it
    gradient_checkpointing: bool = False
    lora_r: int = 0  # LoRA rank through PEFT; 0 trains every weight
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"  # or module names, comma-separated ("q_proj,v_proj")
    merge_lora: bool = True  # save the final policy merged (a plain model) rather than as an adapter


@dataclass
class TaskConfig:
    """Where problems come from. `name` is a built-in task (`arithmetic`, `countdown`), `dataset` (a file at
    `path`, see rlvr.tasks.datasets), `reasoning_gym/<generator>` (its config in `params`), or `mixture`
    (the tasks listed in `mixture`, see rlvr.tasks.mixture). `rlvr tasks` lists them."""

    name: str = "arithmetic"
    difficulty: int = 3
    flaw_rate: float = 0.3
    blind_spot: float = 0.5
    seed: int = 0
    format_reward: float = 0.1
    params: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # dataset file or `datasets` directory
    fields: dict[str, Any] = field(default_factory=dict)  # role -> column: question, answer, id, system, verifier
    template: str | None = None  # prompt template, e.g. "Q: {question}\nA:"
    verifier: str | None = None  # a registered verifier for dataset rows
    verifier_options: dict[str, Any] = field(default_factory=dict)
    skip_invalid: bool = False  # drop (and count) bad dataset rows instead of stopping
    weight: float = 1.0  # sampling weight inside a mixture
    mixture: list[TaskConfig] = field(default_factory=list)  # member tasks, easiest first
    curriculum: int = 0  # training problems over which harder mixture members fade in
    filter_solved: str = _choice("none", "none", "always", "never", "both")


@dataclass
class RolloutConfig:
    """Sampling: `num_generations` completions per prompt (the group size G)."""

    engine: str = _choice("torch", "torch", "vllm")  # vllm: the `vllm` extra, on a CUDA machine
    vllm_gpu_memory_utilization: float = 0.4  # GPU memory vLLM may take (the learner shares the GPU)
    vllm_max_model_len: int | None = None
    kv_cache: str = _choice("static", "static", "dynamic")  # static: preallocated, no copy per token
    compile: bool = False  # decode steps through torch.compile (CUDA graphs on a GPU); finished rows stay
    num_generations: int = 8
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass
class AlgorithmConfig:
    """Advantage estimator, policy loss and KL. `name` picks a preset (see rlvr.algorithms.presets);
    any field set explicitly in the YAML or with --set wins over the preset."""

    name: str = _choice("grpo", "grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo", "reinforce")
    advantage: str = _choice("grpo", "grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce")
    scale_rewards: str = _choice("group", "group", "batch", "none")
    loss_agg: str = _choice("token_mean", "token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
    ratio_level: str = _choice("token", "token", "sequence")
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = None
    kl_coef: float = 0.0
    kl_estimator: str = _choice("k3", "k1", "k2", "k3")
    kl_in_reward: bool = False
    ppo_epochs: int = 1
    entropy_coef: float = 0.0
    dynamic_sampling: bool = False
    max_sampling_draws: int = 3
    overlong_buffer: int = 0
    overlong_penalty: float = 1.0
    mask_truncated: bool = False


@dataclass
class PretrainConfig:
    """Imitation phase: next-token training on the task's worked solutions (flawed teacher included)."""

    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    num_examples: int = 20000
    warmup_steps: int = 50


@dataclass
class TrainConfig:
    """The RL loop: `prompts_per_step` problems x `num_generations` completions each per step."""

    steps: int = 60
    prompts_per_step: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warmup_steps: int = 0
    scheduler: str = _choice("constant", "constant", "cosine", "linear")
    micro_batch_size: int = 128
    micro_batch_tokens: int = 0  # also cap a micro-batch at this many padded tokens (0: rows only)
    # fp32 master weights and optimiser state with compute in model.dtype (mixed precision); false trains the
    # weights in model.dtype itself, where small updates round away (logged as update/changed_frac)
    master_weights: bool = True
    seed: int = 0
    checkpoint_every: int = 20
    out_dir: str = "runs/latest"


@dataclass
class EvalConfig:
    """Held-out evaluation: greedy accuracy plus unbiased pass@k from `samples` draws per problem."""

    num_problems: int = 200
    every: int = 0
    samples: int = 0
    pass_k: list[int] = field(default_factory=lambda: [1])
    max_new_tokens: int | None = None


@dataclass
class LoggingConfig:
    """Where metrics go; JSONL is always written, the others only when their package is installed."""

    tensorboard: bool = False
    wandb: bool = False
    mlflow: bool = False
    progress: bool = True
    samples_per_step: int = 4


@dataclass
class DistributedConfig:
    """Scale-out on Ray (the `ray` extra). `backend: none` is the single-process loop, the default and the
    reference; `ray` puts rollout workers and a data-parallel learner group on a Ray cluster."""

    backend: str = _choice("none", "none", "ray")
    address: str = ""  # "" starts a local cluster; "auto" joins the one on this node; or ray://host:port
    rollout_workers: int = 1
    learners: int = 1
    sharding: str = _choice("ddp", "ddp", "fsdp")  # fsdp: each learner holds 1/N of weights and optimiser
    worker_cpus: float = 1.0  # Ray resources each rollout worker / learner reserves
    learner_cpus: float = 1.0
    worker_gpus: float = 0.0
    learner_gpus: float = 0.0
    async_rollouts: bool = False  # generate the next batches while the learners update
    max_staleness: int = 1  # async: a group made more than this many policy versions ago is dropped
    prefetch_steps: int = 1  # async: how many steps of prompts are generated ahead
    verifiers: int = 0  # 0: each rollout worker scores what it samples; N: N verifier actors score it
    verifier_cpus: float = 1.0  # Ray CPUs each verifier actor reserves (its sandbox runs use its node's pool)
    max_restarts: int = 3  # rollout-worker (and, apart, verifier) restarts per run before the run stops
    timeout_s: float = 600.0  # the learners' collective-operation timeout


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
        value = _coerce(key, value, tp)
        choices = fields[name].metadata.get("choices")
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
    if cfg.distributed.async_rollouts:
        _require(cfg.distributed.prefetch_steps >= 1, "distributed.prefetch_steps",
                 "must be >= 1 with distributed.async_rollouts (how many steps are generated ahead)",
                 cfg.distributed.prefetch_steps)
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
    from rlvr.algorithms.presets import apply_preset

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
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
