"""The vLLM rollout engine (the `vllm` extra, CUDA only), behind the same protocol as the torch engine.

- Prompts go in as token ids and each prompt's `n` samples come from a request seeded with its seed.
- Log-probs are vLLM's `processed_logprobs`: those of the temperature-scaled (and, with top-p < 1,
  nucleus-renormalised) distribution it sampled from. vLLM samples in its own kernels and numerics, so
  the learner's recomputed log-probs differ a little; the learner logs that gap (`logprob_gap`) every step.
- `load_weights(state, version)` updates the weights in place, inside vLLM's worker (an extension method
  called over `collective_rpc`), and empties the prefix cache, whose KV entries the old weights made.

The engine is built in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, as colocated RL trainers do), so weights
pass as tensors, not through a socket.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from rlvr.extras import import_extra
from rlvr.rollout.base import Completion, SamplingParams

EXTENSION = "rlvr.rollout.vllm_engine.WeightSync"


def import_vllm():
    """The `vllm` module (it needs a CUDA machine), or an error that says how to get it."""
    return import_extra("vllm", "rollout.engine: vllm (on a CUDA machine)", "vllm")


class WeightSync:
    """Mixed into vLLM's GPU worker (`worker_extension_cls`): loads a policy state into the running model."""

    def rlvr_load_weights(self, state: dict[str, torch.Tensor]) -> int:
        self.model_runner.model.load_weights(weights=list(state.items()))
        return len(state)


def to_completion(output, stop_token_ids: tuple[int, ...]) -> Completion:
    """A vLLM `CompletionOutput` (token ids, one {token: Logprob} per position) as our `Completion`."""
    ids = list(output.token_ids)
    logprobs = [float(step[token].logprob) for token, step in zip(ids, output.logprobs or [])]
    if len(logprobs) != len(ids):
        raise RuntimeError(f"vLLM returned {len(logprobs)} log-probs for {len(ids)} tokens (is logprobs=0 set?)")
    stopped = output.finish_reason == "stop" or (ids and ids[-1] in stop_token_ids)
    return Completion(ids, logprobs, "stop" if stopped else "length")


class VLLMEngine:
    """Samples with vLLM from the model saved at `model_dir` (a Hugging Face checkpoint directory)."""

    def __init__(self, model_dir: str | Path, dtype: str = "auto", gpu_memory_utilization: float = 0.4,
                 max_model_len: int | None = None, seed: int = 0, enforce_eager: bool = False):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = import_vllm()
        self.version = 0
        self.llm = vllm.LLM(model=str(model_dir), dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, seed=seed, enable_prefix_caching=True,
                            enforce_eager=enforce_eager, logprobs_mode="processed_logprobs",
                            worker_extension_cls=EXTENSION)

    @classmethod
    def from_model(cls, model: torch.nn.Module, tokenizer, rollout_cfg, seed: int = 0,
                   dtype: torch.dtype | None = None) -> VLLMEngine:
        """An engine for an in-memory policy: it is saved once to a temporary checkpoint vLLM starts from,
        and vLLM holds it in `dtype` (default: the policy's own)."""
        if hasattr(model, "get_base_model"):
            raise ValueError("rollout.engine: vllm does not take a LoRA policy yet (set model.lora_r: 0, "
                             "or rollout.engine: torch)")
        tmp = tempfile.mkdtemp(prefix="rlvr-vllm-")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        dtype = str(dtype or next(model.parameters()).dtype).removeprefix("torch.")
        return cls(tmp, dtype=dtype, gpu_memory_utilization=rollout_cfg.vllm_gpu_memory_utilization,
                   max_model_len=rollout_cfg.vllm_max_model_len, seed=seed)

    def generate(self, prompts: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None = None,
                 seeds: list[int] | None = None) -> list[list[Completion]]:
        if not prompts or sampling.n < 1:
            return []
        vllm = import_vllm()
        from vllm.inputs import TokensPrompt

        if seeds is None:
            seeds = torch.randint(0, 2**62, (len(prompts),), generator=generator).tolist()
        stop = () if sampling.ignore_eos else tuple(sorted(set(sampling.stop_token_ids)))
        params = [vllm.SamplingParams(n=sampling.n, max_tokens=sampling.max_new_tokens,
                                      temperature=sampling.temperature, top_p=sampling.top_p,
                                      stop_token_ids=list(stop), ignore_eos=sampling.ignore_eos, logprobs=0, seed=int(s) % 2**63,
                                      stop=None if sampling.ignore_eos else list(sampling.stop) or None,
                                      include_stop_str_in_output=True,
                                      detokenize=False, skip_special_tokens=False)
                  for s in seeds]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                                    use_tqdm=False)
        return [[to_completion(o, stop) for o in out.outputs] for out in outputs]

    def load_weights(self, state: dict[str, torch.Tensor] | None, version: int) -> None:
        """Load `state` into vLLM's model in place (None: only the version moves)."""
        if state is not None:
            self.llm.collective_rpc("rlvr_load_weights", args=(state,))
            self.llm.reset_prefix_cache()  # cached KV entries were computed by the old weights
        self.version = version

