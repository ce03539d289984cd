"""One thread owns the engine and runs the endpoint's requests through it in batches.

Requests arrive from the HTTP server's event loop (`submit` returns a future). The worker takes the first
waiting request, waits `window_s` for more, and runs every waiting request that samples the same way (the
same n, max_tokens, temperature, top_p, stop strings and top_logprobs: the engine's `generate` takes one
`SamplingParams` per call) as one `generate` call, up to `max_batch` prompts. Each prompt carries its own seed
(the request's `seed`, plus i for its i-th prompt, or one the server draws), and the engine's seeded path
makes a prompt's samples depend on its seed and the weights only: batching never changes what is sampled.

Stop strings: a request with `stop` runs through the engine wrapped in a one-turn environment whose pause
strings they are (`rlvr.rollout.episodes.with_environment`), so a row stops at the token in which a stop
string ends (the sampling noise is the single-turn engine's: a row that meets no stop string is the plain
sample). The text is cut before the stop string, as OpenAI does; the token ids keep the tokens sampled up to
the one in which the stop string ends. The engine looks for stop strings in the text with special tokens
written out (as rlvr's episodes read tool calls), the response's text leaves them out: a stop string that
spans a special token (`a<bos>b` holds `ab` only without it) ends the text but not the row, and the tokens
after the one that completes it are dropped from the response too.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import torch

from rlvr.environments.base import SingleTurn
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.episodes import generate_for, with_environment
from rlvr.rollout.torch_engine import behaviour_logprobs
from rlvr.serve.requests import GenRequest


@dataclass
class Sample:
    """One completion as the endpoint returns it: the tokens sampled, their log-probs under the behaviour
    policy, the text (cut before a stop string), why it ended, and optionally each token's top alternatives
    [(token id, log-prob), ...] under the same distribution."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop" | "length"
    top: list[list[tuple[int, float]]] | None = None


class StopStrings(SingleTurn):
    """The one-turn environment whose turn ends at a stop string: run through the episode engine, a row
    pauses where one ends, and its episode ends there."""

    multi_turn = True  # so that `with_environment` wraps the engine and rows stop at the strings

    def __init__(self, stops: tuple[str, ...]):
        self.pause_strings = stops


@dataclass
class _Job:
    req: GenRequest
    seeds: list[int]
    future: Future

    def key(self) -> tuple:
        r = self.req
        return (r.n, r.max_tokens, r.temperature, r.top_p if r.temperature > 0 else 1.0, r.stop, r.top_logprobs)


class Batcher:
    """The engine's owner: `submit(request) -> Future[list[list[Sample]]]` (per prompt, n samples)."""

    def __init__(self, engine, tokenizer, stop_token_ids: tuple[int, ...], seed: int = 0,
                 max_batch: int = 64, window_s: float = 0.005):
        self.engine, self.tokenizer, self.stop_token_ids = engine, tokenizer, tuple(stop_token_ids)
        self.max_batch, self.window_s = max_batch, window_s
        self._rng = random.Random(seed)  # seeds of requests that send none
        self._queue: queue.Queue = queue.Queue()
        self.lock = threading.Lock()  # held while the engine runs: take it to load weights between batches
        self.stats = {"requests": 0, "generate_calls": 0, "prompts": 0}
        self._thread = threading.Thread(target=self._loop, name="rlvr-serve-engine", daemon=True)
        self._thread.start()

    def submit(self, req: GenRequest) -> Future:
        if not self._thread.is_alive():
            raise RuntimeError("the endpoint's engine thread is closed")
        seeds = ([req.seed + i for i in range(len(req.prompts))] if req.seed is not None
                 else [self._rng.getrandbits(63) for _ in req.prompts])
        future: Future = Future()
        self._queue.put(_Job(req, seeds, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _take(self) -> list[_Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs, size = [first], len(first.req.prompts)
        deadline = time.monotonic() + self.window_s
        while size < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # close after this batch
                break
            jobs.append(job)
            size += len(job.req.prompts)
        return jobs

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            groups: dict[tuple, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key(), []).append(job)
            for group in groups.values():
                try:
                    with self.lock:
                        results = self._run(group)
                except Exception as e:  # noqa: BLE001 - the request fails, the server goes on
                    for job in group:
                        job.future.set_exception(e)
                    continue
                for job, result in zip(group, results):
                    job.future.set_result(result)

    def _run(self, group: list[_Job]) -> list[list[list[Sample]]]:
        r = group[0].req
        greedy = r.temperature == 0
        sampling = SamplingParams(r.n, r.max_tokens, r.temperature, 1.0 if greedy else r.top_p, self.stop_token_ids)
        prompts = [p for job in group for p in job.req.prompts]
        seeds = [s for job in group for s in job.seeds]
        engine = with_environment(self.engine, StopStrings(r.stop), self.tokenizer) if r.stop else self.engine
        out = generate_for(engine, None, prompts, sampling, seeds=seeds)
        self.stats["requests"] += len(group)
        self.stats["generate_calls"] += 1
        self.stats["prompts"] += len(prompts)
        samples = [[self._sample(c, r.stop) for c in completions] for completions in out]
        if r.top_logprobs:
            for prompt, group_samples in zip(prompts, samples):
                for s in group_samples:
                    s.top = self._top(prompt, s.token_ids, r.top_logprobs, 1.0 if greedy else r.temperature,
                                      sampling.top_p)
        results, at = [], 0
        for job in group:
            k = len(job.req.prompts)
            results.append(samples[at:at + k])
            at += k
        return results

    def _sample(self, completion, stops: tuple[str, ...]) -> Sample:
        ids, logprobs = completion.token_ids, completion.logprobs
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        found = [(i, len(s)) for i, s in ((text.find(s), s) for s in stops) if i >= 0]
        if found:
            cut, length = min(found)
            keep = self._tokens_through(ids, cut + length)
            ids, logprobs = ids[:keep], logprobs[:keep]
        stopped = bool(found) or (bool(ids) and ids[-1] in self.stop_token_ids)
        return Sample(ids, logprobs, text[:cut] if found else text, "stop" if stopped else "length")

    def _tokens_through(self, ids: list[int], chars: int) -> int:
        """The fewest leading tokens of `ids` whose text (special tokens left out) holds `chars` characters:
        the tokens through the one in which a stop string ending there ends (a bisection over prefixes)."""
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(self.tokenizer.decode(ids[:mid], skip_special_tokens=True)) >= chars:
                hi = mid
            else:
                lo = mid + 1
        return hi

    @torch.no_grad()
    def _top(self, prompt: list[int], tokens: list[int], k: int, temperature: float,
             top_p: float) -> list[list[tuple[int, float]]]:
        """The `k` most likely tokens at each sampled position, under the distribution sampled from (one
        teacher-forced forward pass over prompt and completion)."""
        model = getattr(self.engine, "model", None)
        if not isinstance(model, torch.nn.Module) or not tokens:
            return [[] for _ in tokens]
        ids = torch.tensor([prompt + tokens], device=self.engine.device)
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1]  # (T, V): the logits each token was drawn from
        logp = behaviour_logprobs(logits, temperature, top_p)
        values, index = logp.topk(min(k, logp.shape[-1]), dim=-1)
        return [[(int(i), float(v)) for i, v in zip(row_i, row_v) if v > -float("inf")]
                for row_i, row_v in zip(index.tolist(), values.tolist())]
