"""Multi-turn episodes on the vLLM engine: every model turn is a vLLM request that stops at the end of a
tool call, the environment answers, and the next turn is a request for the whole history, whose KV entries
vLLM's prefix cache already holds (the engine is built with `enable_prefix_caching`), so only the
observation's tokens are prefilled.

Decoding runs in rounds. Round 1 is one request per prompt with `n` samples, seeded with the prompt's seed,
exactly as `VLLMEngine.generate` asks for a single-turn group, plus the environment's pause strings as `stop`
strings (kept in the output, `include_stop_str_in_output`): an episode in which no tool is called is the
single-turn sample. Every later round sends one request per live episode (`n=1`): the prompt followed by
all the episode's tokens so far, seeded by (prompt seed, sample, turn), at most its remaining token budget.
Between rounds the environment answers every paused episode at once, in threads (tools run concurrently,
python in the node's sandbox pool). Observation tokens are kept with mask 0 and log-prob 0; stop tokens,
`ignore_eos`, budgets and finish reasons follow `rlvr.rollout.episodes.EpisodeEngine`.

vLLM cannot be installed on the machines this project is developed on: this path is tested against a
stand-in `vllm` module that checks what rlvr asks of vLLM and reads back, not vLLM itself.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from rlvr.environments.base import Environment
from rlvr.rollout.base import Completion, SamplingParams, sample_seed
from rlvr.rollout.episodes import _Row
from rlvr.rollout.vllm_engine import VLLMEngine, import_vllm, to_completion


def turn_seed(seed: int, sample: int, turn: int) -> int:
    """The vLLM seed of turn `turn` (>= 1; turn 0 is the group's request) of sample `sample` of a prompt
    seeded `seed`: a function of the three only, so an episode never depends on the rest of the batch."""
    return sample_seed(seed, sample * 4096 + turn) % 2**63


class VLLMEpisodeEngine:
    """The engine protocol over episodes of `environment`, each turn sampled by a `VLLMEngine`."""

    def __init__(self, engine: VLLMEngine, environment: Environment, tokenizer, workers: int = 8):
        self.engine, self.environment, self.tokenizer = engine, environment, tokenizer
        self.workers = workers
        self.weights = getattr(engine, "weights", "same")
        self.stats = {"requests": 0, "rounds": 0, "history_tokens": 0}  # history: prompt tokens served by the cache

    @property
    def version(self) -> int:
        return self.engine.version

    def load_weights(self, state, version: int) -> None:
        self.engine.load_weights(state, version)

    def _params(self, vllm, sampling: SamplingParams, n: int, max_tokens: int, seed: int, stop_ids: tuple):
        return vllm.SamplingParams(n=n, max_tokens=max_tokens, temperature=sampling.temperature,
                                   top_p=sampling.top_p, stop_token_ids=list(stop_ids), ignore_eos=sampling.ignore_eos,
                                   stop=list(self.environment.pause_strings), include_stop_str_in_output=True,
                                   logprobs=0, seed=int(seed) % 2**63, skip_special_tokens=False)

    def generate(self, prompts: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None = None,
                 seeds: list[int] | None = None, problems: list | None = None) -> list[list[Completion]]:
        """The engine protocol's `generate`, each sample an episode; `problems` (one per prompt) open them."""
        if not prompts or sampling.n < 1:
            return []
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"generate: {len(seeds)} seeds for {len(prompts)} prompts")
        if seeds is None:
            seeds = torch.randint(0, 2**62, (len(prompts),), generator=generator).tolist()
        vllm = import_vllm()
        from vllm.inputs import TokensPrompt

        env, tok, n = self.environment, self.tokenizer, sampling.n
        problems = problems or [None] * len(prompts)
        budget = min(env.max_tokens or sampling.max_new_tokens, sampling.max_new_tokens)
        stop_ids = () if sampling.ignore_eos else tuple(sorted(set(sampling.stop_token_ids)))
        stop = set(stop_ids)
        rows = [_Row(env.open(problems[j // n]), len(prompts[j // n])) for j in range(len(prompts) * n)]
        turns_sent = [0] * len(rows)  # requests after the first, per episode (its turn seeds)
        # round 1: the single-turn request of each group
        requests = [(list(p), self._params(vllm, sampling, n, budget, s, stop_ids)) for p, s in zip(prompts, seeds)]
        owners = [list(range(i * n, (i + 1) * n)) for i in range(len(prompts))]
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rlvr-episode")
        try:
            while requests:
                self.stats["rounds"] += 1
                self.stats["requests"] += len(requests)
                outs = self.engine.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids, _ in requests],
                                                [params for _, params in requests], use_tqdm=False)
                paused = []
                for members, out in zip(owners, outs):
                    for j, o in zip(members, out.outputs):
                        row, c = rows[j], to_completion(o, stop_ids)
                        row.tokens += c.token_ids
                        row.logps += c.logprobs
                        row.mask += [1] * len(c.token_ids)
                        if c.token_ids and c.finish_reason == "stop":  # vLLM's "stop": a stop token or string
                            paused.append(j)
                        else:  # the budget ran out (or nothing was written): counted, never answered
                            row.reason, row.episode.record.ended = "length", "length"
                            row.episode.record.turns += 1
                turns = [tok.decode(rows[j].tokens[rows[j].turn_start:], skip_special_tokens=False) for j in paused]
                answers = pool.map(lambda a: rows[a[0]].episode.respond(a[1]), zip(paused, turns))
                requests, owners = [], []
                for j, obs in zip(paused, list(answers)):
                    row = rows[j]
                    if row.resume(obs, budget, stop, tok) is None:
                        continue
                    history = prompts[j // n] + row.tokens
                    self.stats["history_tokens"] += len(history)
                    turns_sent[j] += 1
                    requests.append((history, self._params(vllm, sampling, 1, budget - len(row.tokens),
                                                           turn_seed(seeds[j // n], j % n, turns_sent[j]), stop_ids)))
                    owners.append([j])
        finally:
            pool.shutdown(wait=True)
        return [[rows[j].completion(tok) for j in range(i * n, (i + 1) * n)] for i in range(len(prompts))]
