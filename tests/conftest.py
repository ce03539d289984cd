"""Fixtures shared by the tests that need a policy: one CPU thread, tiny Llamas and a tiny run recipe."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from rlvr.models.tiny import build_tiny_llama
from rlvr.models.tokenizer import build_char_tokenizer

# A run small enough for a test: 2-layer width-32 Llama, 2 prompts x 2 completions of at most 12 tokens.
# A random policy never earns a reward, so every advantage is 0; the entropy bonus and the KL term give
# every step a gradient that depends on what was sampled, so the weights move and the samples matter.
TINY_RUN = {
    "model": {
        "kind": "tiny",
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "device": "cpu",
    },
    "task": {"name": "arithmetic", "difficulty": 2},
    "rollout": {"num_generations": 2, "max_new_tokens": 12},
    "algorithm": {"entropy_coef": 0.01, "kl_coef": 0.1},
    "train": {"steps": 3, "prompts_per_step": 2, "checkpoint_every": 1, "lr": 1.0e-3},
    "eval": {"num_problems": 4},
    "logging": {"progress": False},
}


@pytest.fixture(scope="session", autouse=True)
def _one_cpu_thread():
    """Tiny models are bound by per-op overhead: on shared cores, OpenMP threads wait at barriers and a
    width-32 forward gets ~40x slower with 2 threads than with 1. One thread is also what the subprocess
    tests use (OMP_NUM_THREADS=1), so CPU results are comparable bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def char_tokenizer():
    return build_char_tokenizer()


@pytest.fixture
def make_tiny_model(char_tokenizer):
    """`make_tiny_model(seed=0, sharp=False)` -> an fp32 `LlamaForCausalLM` (hidden 32, 2 layers) in eval mode.

    At the default init (std 0.02) every next-token distribution is nearly uniform, so a log-prob taken at
    the wrong position would still look right; `sharp=True` re-draws the matrices with std 0.3 so the
    distributions differ from position to position."""

    def make(seed: int = 0, sharp: bool = False) -> torch.nn.Module:
        model = build_tiny_llama(
            char_tokenizer,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            seed=seed,
        )
        if sharp:
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    if p.dim() == 2:
                        p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        return model.eval()

    return make


@pytest.fixture(scope="session")
def tool_model(tmp_path_factory, char_tokenizer):
    """The directory of a tiny Llama imitated on tool_arithmetic transcripts, half of them calling the
    calculator (`<call>calculator 347*26</call>`), so its episodes call the tool."""
    from rlvr.config import PretrainConfig
    from rlvr.models.loading import encode_prompt, save_policy
    from rlvr.pretrain import pretrain
    from rlvr.stories.tools import tool_corpus
    from rlvr.tasks.tool_arithmetic import ToolArithmeticTask

    tok = char_tokenizer
    task = ToolArithmeticTask(tool_share=0.5, eval_size=4)
    corpus, share = tool_corpus(task, tok, lambda p: encode_prompt(p, tok), 256, seed=0)
    assert 0.3 < share < 0.7
    model = build_tiny_llama(tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                             max_position_embeddings=96)
    pretrain(model, tok, corpus, PretrainConfig(steps=150, batch_size=32, lr=1e-2, warmup_steps=10))
    path = tmp_path_factory.mktemp("tool_model")
    save_policy(model, tok, path)
    return path


def tool_run(model_dir, tools: list[dict] | None = None) -> dict:
    """The model, task and rollout sections of a run of `tool_model` (at `model_dir`) on tool_arithmetic
    episodes: 4 episodes per prompt, at most 3 turns and 2 calls each (`tools`: the calculator by default)."""
    return {"model": {"kind": "hf", "path": str(model_dir), "device": "cpu"},
            "task": {"name": "tool_arithmetic", "tools": tools or [{"name": "calculator"}],
                     "params": {"tool_share": 0.5}, "episode": {"max_turns": 3, "max_tool_calls": 2}},
            "rollout": {"num_generations": 4, "max_new_tokens": 72}}


@pytest.fixture
def tiny_recipe(tmp_path):
    """`tiny_recipe(name="run.yaml", **{"train.steps": 6})` writes TINY_RUN with dotted overrides to
    tmp_path and returns the file's path."""

    def write(name: str = "run.yaml", **overrides) -> Path:
        data = copy.deepcopy(TINY_RUN)
        for dotted, value in overrides.items():
            section, key = dotted.split(".")
            data[section][key] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write


def logprob_gaps(model, prompts: list[list[int]], groups, skip: int = 0) -> torch.Tensor:
    """|engine log-prob - `model`'s own| of every sampled token of `groups` (an engine's completions of
    `prompts`), the model's log-probs from its full forward over prompt + completion; `skip` leaves out each
    completion's first tokens."""
    gaps = []
    for prompt, group in zip(prompts, groups):
        for c in group:
            ids = torch.tensor([prompt + c.token_ids])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, len(prompt) - 1: -1]
            full = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
            gaps.append((torch.tensor(c.logprobs) - full).abs()[skip:])
    return torch.cat(gaps)
