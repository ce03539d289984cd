"""Held-out evaluation: greedy accuracy, unbiased pass@k and maj@k, overall and by task."""

from __future__ import annotations

from collections import Counter, defaultdict
from math import comb
from typing import TYPE_CHECKING

import torch

from rlvr.models.loading import decode_completion, encode_prompt, stop_token_ids
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.episodes import generate_for, prompt_tools
from rlvr.types import Problem
from rlvr.verifiers import VerifierError, score_sample

if TYPE_CHECKING:
    from rlvr.config import Config


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_is_correct(verdicts: list[tuple[bool, object]]) -> bool:
    """maj@k on (correct, parsed answer) pairs. Every correct answer is one vote for the same class, since the
    verifier judged them equivalent (countdown has many right expressions, math many right forms); wrong answers
    vote by their parsed text and unparsed ones do not vote. A tie goes against the correct class."""
    right = sum(1 for ok, _ in verdicts if ok)
    wrong = Counter(str(ans) for ok, ans in verdicts if not ok and ans is not None)
    return right > 0 and right > max(wrong.values(), default=0)


MAX_ROWS = 1024  # sampled rows generated at once by `evaluate`


def evaluate(engine, tokenizer, task, problems: list[Problem], encode, max_new_tokens: int, stop_ids,
             samples: int = 0, pass_k: list[int] | tuple[int, ...] = (1,), batch_size: int = 256,
             generator: torch.Generator | None = None, keep: int = 0, prefix: str | None = None,
             stop: tuple[str, ...] = (), max_rows: int = MAX_ROWS) -> dict:
    """Greedy accuracy and format rate on `problems`; with `samples > 0` also pass@k (unbiased) and maj@k
    from that many temperature-1 samples per problem. `encode(problem) -> ids`; `task.verify` scores
    `prefix` (the response prefix the prompt ended with) + the completion.
    A problem the sandbox could not score (`InfraError`), or whose environment gave no reward, is left out and
    counted in "infra_skipped"; one the verifier itself failed on (`VerifierError`, in its greedy or any drawn
    sample) is left out too, counted in "verifier_skipped" with the first message in "verifier_error": neither
    is counted as wrong.
    With an engine that runs episodes (task.tools), "tool_rate" is the share of greedy episodes that called a tool.
    Problems whose `meta["kind"]` is set (reasoning-gym's: the entry's difficulty values) are also counted per kind
    in "by_kind": {kind: {"accuracy", "n", "pass@k"...}}, which shows what kind of problem a gain came from.
    Returns {"accuracy", "format_rate", "pass@k"..., "by_task": {task: {...}}, "n", "examples": [...]}."""
    per_task: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    per_kind: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    examples = []
    infra_skipped = 0  # problems the sandbox could not score (never counted as wrong)
    faults: list[VerifierError] = []  # one per problem the verifier failed on (never counted as wrong)
    # at most `batch_size` problems at a time, and with samples at most `max_rows` sampled rows (each holds its own
    # KV cache: 200 problems x 8 samples in one batch took 12 GB for a 135M model)
    step = max(1, min(batch_size, max_rows // samples)) if samples else batch_size
    for start in range(0, len(problems), step):
        chunk = problems[start : start + step]
        prompts = [encode(p) for p in chunk]
        greedy = generate_for(engine, chunk, prompts, SamplingParams(1, max_new_tokens, 0.0, 1.0, stop_ids, stop=stop),
                              generator)
        sampled = None
        if samples:
            sampled = generate_for(engine, chunk, prompts,
                                   SamplingParams(samples, max_new_tokens, 1.0, 1.0, stop_ids, stop=stop), generator)
        for i, p in enumerate(chunk):
            text = decode_completion(tokenizer, greedy[i][0].token_ids, prefix)
            try:
                score = score_sample(task.verify, p, text, greedy[i][0].episode)
                drawn = [] if sampled is None else \
                    [score_sample(task.verify, p, decode_completion(tokenizer, c.token_ids, prefix), c.episode)
                     for c in sampled[i]]
            except VerifierError as e:  # the verifier's fault: no verdict on this problem, left out, counted
                faults.append(e)
                continue
            if score is None or any(s is None for s in drawn):  # no reward (sandbox or environment): left out, counted
                infra_skipped += 1
                continue
            kind = p.meta.get("kind") if isinstance(p.meta, dict) else None
            verdicts = [(s.correct, s.details.get("parsed")) for s in drawn]
            # the problem counts for its task and, when the task names it (reasoning-gym's difficulty values), its kind
            for rec in [per_task[p.task]] + ([per_kind[kind]] if kind is not None else []):
                rec["correct"].append(score.correct)
                rec["formatted"].append(score.formatted)
                if greedy[i][0].episode is not None:  # a multi-turn episode: did it call a tool?
                    rec["tool_called"].append(bool(greedy[i][0].episode.calls))
                if sampled is not None:
                    rec["n_correct"].append(sum(v[0] for v in verdicts))
                    rec["maj"].append(majority_is_correct(verdicts))
            if len(examples) < keep:
                examples.append({"id": p.id, "task": p.task,
                                 "prompt": p.prompt if isinstance(p.prompt, str) else str(p.prompt),
                                 "completion": text, "correct": score.correct, "reward": score.reward})
    result = _summarise(per_task, samples, pass_k, examples)
    if per_kind:  # per kind: greedy accuracy, count and pass@k
        result["by_kind"] = {kind: {k: v for k, v in _stats(rec, samples, pass_k).items()
                                    if k in ("accuracy", "n") or k.startswith("pass@")}
                             for kind, rec in sorted(per_kind.items())}
    if infra_skipped:
        result["infra_skipped"] = infra_skipped
    if faults:
        result["verifier_skipped"] = len(faults)
        result["verifier_error"] = str(faults[0])
    return result


def evaluate_held_out(cfg: Config, engine, tokenizer, task, generator: torch.Generator | None = None,
                      keep: int = 0, with_prefix: bool = True, greedy_only: bool = False) -> dict:
    """`evaluate` wired as a run's config asks (the one wiring of the trainer, `rlvr eval` and the demo):
    `eval.num_problems` held-out problems of `task`, prompts encoded with `model.system_prompt` and (unless
    `with_prefix=False`) `model.response_prefix`, `eval.max_new_tokens` (else `rollout.max_new_tokens`),
    the tokenizer's stop tokens and `eval.stop` (else `rollout.stop`), and
    `eval.samples` draws for pass@k / maj@k (none with `greedy_only`)."""
    e, m = cfg.eval, cfg.model
    prefix = m.response_prefix if with_prefix else None
    return evaluate(engine, tokenizer, task, task.eval_problems(e.num_problems),
                    lambda p: encode_prompt(p, tokenizer, m.system_prompt, prefix, prompt_tools(engine)),
                    e.max_new_tokens or cfg.rollout.max_new_tokens, stop_token_ids(tokenizer),
                    samples=0 if greedy_only else e.samples, pass_k=e.pass_k, generator=generator, keep=keep,
                    prefix=prefix, stop=tuple(cfg.rollout.stop if e.stop is None else e.stop))


def _stats(rec: dict[str, list], samples: int, pass_k) -> dict:
    """Accuracy, format rate, count, tool rate and (with samples) pass@k and maj@k of one record of verdicts."""
    n = len(rec["correct"])
    out = {"accuracy": sum(rec["correct"]) / max(n, 1), "format_rate": sum(rec["formatted"]) / max(n, 1), "n": n}
    if rec.get("tool_called"):
        out["tool_rate"] = sum(rec["tool_called"]) / len(rec["tool_called"])
    if samples:
        for k in pass_k:
            out[f"pass@{k}"] = sum(pass_at_k(samples, c, k) for c in rec["n_correct"]) / max(n, 1)
        out[f"maj@{samples}"] = sum(rec["maj"]) / max(n, 1)
    return out


def _summarise(per_task, samples: int, pass_k, examples) -> dict:
    merged: dict[str, list] = defaultdict(list)
    for rec in per_task.values():
        for k, v in rec.items():
            merged[k].extend(v)
    result = _stats(merged, samples, pass_k)
    result["by_task"] = {name: _stats(rec, samples, pass_k) for name, rec in sorted(per_task.items())}
    result["examples"] = examples
    return result
