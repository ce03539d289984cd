"""The run configuration's schema: one typed dataclass per section, every field with its default, and for
fields that take one of a few names, the names (from the module that acts on them, so there is one list).

Loading, `--set` overrides and checking live in `rlvr.config.loading`; presets in `rlvr.config.presets`.
Nothing here imports torch: reading a config is cheap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rlvr.algorithms.names import (
    ESTIMATORS,
    KL_ESTIMATORS,
    LOSS_AGGS,
    OFFPOLICY_MODES,
    RATIO_LEVELS,
    SCALES,
    SEQ_REDUCES,
)
from rlvr.config.presets import PRESETS


def _choice(default: Any, *choices: Any) -> Any:
    """A field that takes one of `choices` (checked when a config is loaded)."""
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
    # on a CPU, the C library keeps freed memory for the next step instead of handing it back to the OS and
    # faulting it in again (rlvr.models.host_memory); the process keeps its peak footprint
    keep_host_memory: bool = True
    lora_r: int = 0  # LoRA rank through PEFT; 0 trains every weight
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"  # or module names, comma-separated ("q_proj,v_proj")
    merge_lora: bool = True  # save the final policy merged (a plain model) rather than as an adapter


@dataclass
class ToolConfig:
    """A tool the model may call in an episode (see rlvr.environments): `calculator`, `python`, or a user tool
    `function: "module:function"` whose arguments follow the JSON schema `parameters`; user tools run in the
    sandbox unless `trusted`."""

    name: str = ""
    function: str | None = None
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    trusted: bool = False


@dataclass
class EpisodeConfig:
    """Limits of a multi-turn episode (a task with `tools`). `max_tokens`: completion tokens per episode, model
    and observation together (0: rollout.max_new_tokens); `tool_format`: how calls are written (`auto`: the
    chat template's own form, `<tool_call>` JSON or Llama 3's bare JSON turn, where it has a tools branch,
    else the `<call>` tag form);
    `env_timeout_s`: how long an adapted environment (`task.environment`) may take to open or to answer one
    step before its episode is left out as an environment error."""

    max_turns: int = 4
    max_tool_calls: int = 3
    max_tokens: int = 0
    tool_timeout_s: float = 5.0
    env_timeout_s: float = 60.0
    max_observation_chars: int = 400
    tool_format: str = _choice("auto", "auto", "tags", "json", "llama")


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
    # the shape that earns format_reward: `think_answer` (<think>...</think><answer>...</answer>) or `answer`
    # (<answer>...</answer> alone: a reply primed with model.response_prefix "<answer>" earns it by closing the
    # tag, which think_answer can never give it)
    format_style: str = _choice("think_answer", "think_answer", "answer")
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
    tools: list[ToolConfig] = field(default_factory=list)  # non-empty: problems are multi-turn episodes
    # a library's environment, `<library>:<env id>` (skyrl_gym, textarena; rlvr.environments.adapters), its
    # options in environment_options; its own reward scores the episodes
    environment: str | None = None
    environment_options: dict[str, Any] = field(default_factory=dict)
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    # built-in generators and reasoning-gym's curricula (level L: every attribute at its L-th value): difficulty
    # follows the measured informative share (rlvr.tasks.curriculum), from curriculum_start up to curriculum_max
    # (default difficulty + 1); held-out stays at `difficulty`. Where task.params sets fields of a reasoning-gym
    # curriculum, the task as configured is held out, one level above reasoning-gym's highest (difficulty says so)
    adaptive_difficulty: bool = False
    curriculum_start: int = 1
    curriculum_max: int | None = None
    # informative share of groups of rollout.num_generations (estimated from screens where there are some) below
    # which the difficulty moves away from the failure
    curriculum_low: float = 0.3
    curriculum_window: int = 16  # problems observed per decision
    # draw training problems of each kind (reasoning-gym's difficulty values, meta['kind']) in proportion to the
    # informative share of that kind's last kind_window groups, at least kind_floor (rlvr.tasks.kinds): the
    # draws go where groups carry a signal, at no extra samples; held-out problems are unchanged
    kind_sampling: bool = False
    kind_floor: float = 0.05
    kind_window: int = 8


@dataclass
class RolloutConfig:
    """Sampling: `num_generations` completions per prompt (the group size G)."""

    engine: str = _choice("torch", "torch", "vllm")  # vllm: the `vllm` extra, on a CUDA machine
    vllm_gpu_memory_utilization: float = 0.4  # GPU memory vLLM may take (the learner shares the GPU)
    vllm_max_model_len: int | None = None
    kv_cache: str = _choice("static", "static", "dynamic")  # static: preallocated, no copy per token
    # decode steps through torch.compile: on a GPU the model's forward (CUDA graphs); on a CPU with bf16 or fp32
    # packed weights the layer loop's step, its linears still on the packed kernels (1.18x tokens/s for
    # SmolLM2-135M in bf16, 1.16x in fp32, 2 x 8 x 64, after ~27 s of compiling per batch size and cache
    # length). Finished rows leave the batch down a ladder of batch sizes (16, 12, 8, 6, ...), one graph each:
    # at natural length 1.15x the same compiled steps with every row kept and 1.11x the eager loop
    # (benchmarks/compiled_rows.py).
    compile: bool = False
    # CPU decode runs its linear layers on oneDNN-packed copies of the weights (rlvr.rollout.cpu_kernels): faster
    # decode for the weights' memory once more and a repack per weight sync; false where memory is short
    cpu_kernels: bool = True
    # decode steps of Llama-family models on rlvr's CPU attention as one plain loop over the model's modules
    # (rlvr.rollout.layer_loop): the forward's logits bit for bit, without transformers' per-step overhead
    layer_loop: bool = True
    num_generations: int = 8
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 1.0
    # the form of the weights the torch engine samples from: same (the learner's compute dtype), bf16, int8
    # (torchao weight-only), fp8 (torchao, GPUs with fp8), w8a8 (CPU decode on oneDNN's int8 products of int8
    # weights and activations); auto picks per hardware (rlvr.rollout.weights)
    weights: str = _choice("auto", "auto", "same", "bf16", "int8", "fp8", "w8a8")
    ignore_eos: bool = False  # every completion runs to max_new_tokens (fixed-length benchmarks)
    # strings that end a completion (kept in it), as vLLM's `stop`: e.g. ["</answer>"], so a reply does not
    # run on after its answer; single-turn only (multi-turn turns end at their tools' pause strings)
    stop: list[str] = field(default_factory=list)


@dataclass
class AlgorithmConfig:
    """Advantage estimator, policy loss and KL. `name` picks a preset (see rlvr.config.presets);
    any field set explicitly in the YAML or with --set wins over the preset."""

    name: str = _choice("grpo", *PRESETS)
    advantage: str = _choice("grpo", *ESTIMATORS)
    scale_rewards: str = _choice("group", *SCALES)
    loss_agg: str = _choice("token_mean", *LOSS_AGGS)
    ratio_level: str = _choice("token", *RATIO_LEVELS)
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = None
    kl_coef: float = 0.0
    kl_estimator: str = _choice("k3", *KL_ESTIMATORS)
    kl_in_reward: bool = False
    ppo_epochs: int = 1
    entropy_coef: float = 0.0
    dynamic_sampling: bool = False
    max_sampling_draws: int = 3
    overlong_buffer: int = 0
    overlong_penalty: float = 1.0
    mask_truncated: bool = False
    # off-policy correction of the engine/learner gap (rlvr.algorithms.offpolicy): auto = on whenever the
    # engine samples from another form or distribution than the learner's (other weights, vLLM, top_p < 1)
    offpolicy_correction: str = _choice("auto", *OFFPOLICY_MODES)
    tis_cap: float = 2.0  # C of truncated importance sampling: weight min(pi_learner / pi_behaviour, C)
    seq_mask_cap: float | None = 2.0  # drop a completion whose ratio leaves [1/C, C]; null: no mask
    seq_mask_reduce: str = _choice("mean", *SEQ_REDUCES)  # the completion's ratio: geometric mean or product
    # prompt screening (rlvr.screening): screen_samples per fresh candidate first; the full group goes only to
    # candidates with some right and some wrong, over at most screen_rounds rounds of screen_oversample x the
    # missing prompts
    screening: bool = False
    screen_samples: int = 4
    screen_rounds: int = 4
    screen_oversample: int = 2


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
    # the learner's policy forward (and so its backward) through torch.compile, its input padded to a ladder
    # of (rows, length) buckets so that it compiles once per bucket (rlvr.compiled_forward)
    compile: bool = False
    # fp32 master weights and optimiser state with compute in model.dtype (mixed precision); false trains the
    # weights in model.dtype itself, where small updates round away (logged as update/changed_frac)
    master_weights: bool = True
    # samples the sandbox could not score (its fault, not the candidate's) are left out of the batch and
    # counted; a step where more than this share of its samples could not be scored stops the run (with 1.0 a
    # step where none could be scored goes on without an update, logged as update/skipped)
    max_infra_error_rate: float = 0.1
    # samples the verifier itself could not score (it raised, returned garbage, a composed term timed out:
    # rlvr.verifiers.VerifierError) are left out and counted apart (verify/verifier_errors), under a limit of
    # their own: a bug in reward code is not a host fault, and a high limit for a flaky host must not hide it
    max_verifier_error_rate: float = 0.1
    # completions with zero advantage (every one of a constant GRPO group) are not run through the learner
    # when the loss has no KL or entropy term: their gradient is exactly 0 and the normaliser still counts
    # them, so the update is unchanged; token diagnostics (entropy, clip_frac, logprob_gap) cover the rows run
    skip_zero_advantage: bool = True
    # a batch with no gradient at all (every row's advantage 0 and no KL or entropy term: every group constant)
    # still steps the optimiser by default, as TRL and verl do: Adam's momentum carries the last updates on and
    # its second moment averages in zeros. True makes no update there (no optimiser or schedule step, as for a
    # step whose every group was dropped; logged as update/empty), so where most steps carry no signal the
    # policy moves only on real gradients and Adam's state holds only them
    skip_empty_updates: bool = False
    # the completions of one prompt (a GRPO group) share one pass of the prompt through the decoder, its keys and
    # values copied to each and the gradients summed back (rlvr.shared_prefix): the same update, without the
    # prompt's G - 1 extra passes; models whose output layer splits off (llama, qwen2, ...), not compiled
    share_prompts: bool = True
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
    stop: list[str] | None = None  # strings that end an answer; None: rollout.stop


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
class CheckConfig:
    """`rlvr check` (and its capped run at the start of `rlvr train`): is there a learning signal?"""

    problems: int = 16  # training problems sampled (apart from the training stream)
    temperatures: list[float] = field(default_factory=lambda: [0.7, 0.4])  # lower ones, measured too
    min_informative_share: float = 0.25  # warn below this expected share of informative groups
    train_seconds: float = 60.0  # time cap of the check at the start of `rlvr train`; 0 turns it off


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
    check: CheckConfig = field(default_factory=CheckConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
