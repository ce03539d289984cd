"""`rlvr check`: is there a learning signal before the run burns hours on zero advantages?

On a sample of training problems drawn apart from the training stream (indices from `CHECK_OFFSET` on, picked
by the check's own seeded `random.Random`; sampling noise from per-prompt seeds of its own), it measures
pass@1 and pass@G at the rollout temperature and a few lower ones, the greedy accuracy, format and
truncation rates, lengths and throughput, and the verifier's answers to reference, empty, wrong and echoed
completions. From per-problem pass rates p_i it predicts the share of informative groups of G samples (not
all right, not all wrong):

    informative(p, G) = 1 - p^G - (1 - p)^G,  averaged over problems.

With few problems and rare successes that share is noisy: 1 mixed group in 48 problems reads 2.1% but is
consistent with 0.5% to 8.8%. So the share comes with its 90% Wilson score interval over the problems measured
(each problem's group is mixed or not: a binomial count where n = G, as in the check), and the advice says
when the interval reaches across the warning threshold.

Where problems name their kind (reasoning-gym's difficulty values, e.g. `num_terms=3, num_digits=1`) the same
numbers are given per kind: a kind that no sample solves gives no signal at all, whatever the share overall.

Nothing here touches the run's generators, cursor or task state, so a run with the check is the same run
without it. Advice and the table live in `rlvr.check_advice`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

from rlvr.algorithms.informative import informative, informative_unbiased
from rlvr.evaluate import pass_at_k
from rlvr.models.loading import decode_completion, encode_prompt, stop_token_ids
from rlvr.rollout.base import SamplingParams, sample_seed
from rlvr.rollout.episodes import generate_for, prompt_tools
from rlvr.tasks.base import StreamWrapper, Task, derive_seed
from rlvr.tasks.kinds import kind_sampled_share
from rlvr.types import Problem
from rlvr.verifiers import VerifierError, score_or_none, score_sample

CHECK_OFFSET = 10**7  # training streams of a real run stay far below this index
CHUNK = 4  # problems per generate call: the time cap is checked between chunks
ANSWER_END = "</answer>"


def informative_share(pass_rates: list[float], group_size: int) -> float:
    """Expected share of groups of `group_size` samples that are neither all right nor all wrong, for
    problems with these pass rates: mean_i [1 - p_i^G - (1 - p_i)^G]. 0.0 for no problems."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    return sum(informative(p, group_size) for p in pass_rates) / len(pass_rates) if pass_rates else 0.0


def informative_share_from_counts(n: int, counts: list[int], group_size: int) -> float:
    """The same share estimated without bias from `counts[i]` correct of `n` samples per problem
    (`n >= group_size`): p^G is estimated by C(c, G) / C(n, G), the chance that G of the n drawn samples are
    all right; plugging c/n into the formula instead underestimates the share for small n."""
    if not 1 <= group_size <= n:
        raise ValueError(f"group_size must be in [1, n={n}], got {group_size}")
    return sum(informative_unbiased(c, n, group_size) for c in counts) / len(counts) if counts else 0.0


def wilson_interval(share: float, n: int, z: float = 1.645) -> tuple[float, float]:
    """The Wilson score interval (90% for z = 1.645) of a share measured on `n` independent problems; (0, 1)
    for none. Unlike share +- z * se it stays inside [0, 1] and is not empty when nothing was mixed."""
    if n < 1:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def base_task(task: Task) -> Task:
    """The task under stream-changing wrappers (`SolvedFilter`, `KindSampler`), whose `train_problem` has side
    effects."""
    while isinstance(task, StreamWrapper):
        task = task.task
    return task


def check_problems(task: Task, n: int, seed: int) -> list[Problem]:
    """`n` training problems from indices the run's stream never reaches (held-out ones never appear:
    `train_problem` excludes them), chosen by the check's own RNG."""
    from rlvr.tasks.mixture import MixtureTask

    rng = random.Random(derive_seed("rlvr-check", seed))
    source = base_task(task)
    if isinstance(source, MixtureTask):  # by weight from each member's own stream (the mixture's far index is slow)
        weights = [m.weight for m in source.members]
        return [source.member_problem(rng.choices(range(len(weights)), weights)[0],
                                      CHECK_OFFSET + rng.randrange(10**6)) for _ in range(n)]
    return [source.train_problem(CHECK_OFFSET + rng.randrange(10**6)) for _ in range(n)]


# --- the verifier's sanity ------------------------------------------------------------------------
def reference_completion(answer) -> str | None:
    """A completion that states `answer` in the expected format, or None when the answer is not a plain value
    (test cases, choices with structure): such verifiers are not sanity-checked this way."""
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        return None
    return f"<think>The answer is {answer}.</think><answer>{answer}</answer>"


def wrong_answer(answer, others: list) -> str:
    """A wrong answer of the same kind: the number plus one (times ten for a zero-free float), else another
    problem's different answer, else the answer with a digit prepended."""
    text = str(answer).strip()
    try:
        return str(int(text) + 1)
    except ValueError:
        pass
    try:
        return repr(float(text) * 10 + 1)
    except ValueError:
        pass
    different = [o for o in others if str(o).strip() != text]
    return str(different[0]) if different else "9" + text


def verifier_sanity(task: Task, problems: list[Problem]) -> dict:
    """Score what must be right (the reference answer as a completion) and what must be wrong (an empty
    reply, a wrong number, the prompt echoed back, with and without answer tags). Returns the share of each
    scored correct, the cases that broke the rule, and `ok`. A verifier that raises (or returns garbage) on any
    of them fails the check: `verifier_errors` counts those completions and each is a failure of case
    "verifier raised" with its message (in training such a sample has no reward and is counted)."""
    verify = task.verify
    cases: dict[str, list[bool]] = {"reference": [], "empty": [], "wrong": [], "echo": []}
    failures: list[dict] = []
    raised: list[str] = []  # the verifier's own faults, by message
    answers = [p.answer for p in problems]
    for p in problems:
        ref = reference_completion(p.answer)
        if ref is None:
            continue
        question = str(p.meta.get("question", p.prompt))
        texts = {"reference": [ref], "empty": ["", "<think></think><answer></answer>"],
                 "wrong": [reference_completion(wrong_answer(p.answer, answers))],
                 "echo": [question, f"<think>{question}</think><answer>{question}</answer>"]}
        for case, variants in texts.items():
            for text in variants:
                try:
                    score = score_or_none(verify, p, text)
                except VerifierError as e:  # the verifier's own fault: no verdict, and the check fails
                    raised.append(str(e))
                    if len(failures) < 8:
                        failures.append({"case": "verifier raised", "problem": p.id, "answer": str(p.answer),
                                         "text": text[:200], "error": str(e)})
                    continue
                if score is None:  # the sandbox could not run it: no verdict either way
                    continue
                cases[case].append(score.correct)
                if score.correct != (case == "reference") and len(failures) < 8:
                    failures.append({"case": case, "problem": p.id, "answer": str(p.answer), "text": text[:200],
                                     "scored_correct": score.correct})
    rates = {f"{case}_correct_rate": (sum(v) / len(v) if v else None) for case, v in cases.items()}
    checked = len(cases["reference"])
    ok = checked > 0 and not raised and rates["reference_correct_rate"] == 1.0 and not any(
        rates[f"{c}_correct_rate"] for c in ("empty", "wrong", "echo"))
    return {"problems": checked, **rates, "ok": ok if checked or raised else None, "verifier_errors": len(raised),
            "verifier_error": raised[0] if raised else None, "failures": failures}


# --- sampling ---------------------------------------------------------------------------------------
@dataclass
class Sampled:
    """What one temperature's samples showed, per problem and overall."""

    temperature: float
    n: int  # samples per problem
    counts: list[int] = field(default_factory=list)  # correct samples per problem
    formatted: int = 0
    truncated: int = 0
    tokens: int = 0
    samples: int = 0
    seconds: float = 0.0
    tool_calls: int | None = None  # samples whose episode called a tool (None: no episodes ran)
    verifier_errors: int = 0  # samples the verifier itself failed on (no verdict: counted as not correct)
    run_on: int = 0  # samples that go on writing after their first </answer> (what rollout.stop would cut)

    def summary(self, group_size: int) -> dict:
        m = len(self.counts)
        rates = [c / self.n for c in self.counts]
        out = {"temperature": self.temperature, "samples_per_problem": self.n, "problems": m,
               "pass@1": sum(rates) / m if m else None,
               "format_rate": self.formatted / self.samples if self.samples else None,
               "truncation_rate": self.truncated / self.samples if self.samples else None,
               "run_on_rate": self.run_on / self.samples if self.samples else None,
               "mean_length": self.tokens / self.samples if self.samples else None,
               "tokens_per_s": self.tokens / self.seconds if self.seconds > 0 else None,
               "seconds_per_sample": self.seconds / self.samples if self.samples else None}
        if self.tool_calls is not None:  # multi-turn episodes: the share of samples that called a tool
            out["tool_rate"] = self.tool_calls / self.samples if self.samples else None
        if self.verifier_errors:
            out["verifier_errors"] = self.verifier_errors
        if self.n >= group_size:
            out[f"pass@{group_size}"] = sum(pass_at_k(self.n, c, group_size) for c in self.counts) / m if m else None
            out["informative_share"] = informative_share_from_counts(self.n, self.counts, group_size) if m else None
            out["informative_share_interval"] = list(wilson_interval(out["informative_share"], m)) if m else None
        out["informative_share_plugin"] = informative_share(rates, group_size) if m else None
        return out


class Sampler:
    """Samples `problems` with the check's own seeds and scores them with the task's verifier."""

    def __init__(self, engine, tokenizer, task: Task, cfg, seed: int):
        self.engine, self.tokenizer, self.task, self.cfg, self.seed = engine, tokenizer, task, cfg, seed
        self.stop_ids = stop_token_ids(tokenizer)
        self.prefix = cfg.model.response_prefix

    def run(self, problems: list[Problem], offset: int, out: Sampled) -> None:
        """Add `problems` (at positions `offset`, `offset + 1`, ... of the check's sample) to `out`."""
        r = self.cfg.rollout
        prompts = [encode_prompt(p, self.tokenizer, self.cfg.model.system_prompt, self.prefix, prompt_tools(self.engine))
                   for p in problems]
        seeds = [sample_seed(derive_seed("rlvr-check", self.seed, out.temperature), offset + i)
                 for i in range(len(problems))]
        sampling = SamplingParams(out.n, r.max_new_tokens, out.temperature, r.top_p if out.temperature else 1.0,
                                  self.stop_ids, stop=tuple(r.stop))
        t0 = time.time()
        groups = generate_for(self.engine, problems, prompts, sampling, seeds=seeds)  # episodes with task.tools
        out.seconds += time.time() - t0
        for p, group in zip(problems, groups):
            correct = 0
            for c in group:
                text = decode_completion(self.tokenizer, c.token_ids, self.prefix)
                out.run_on += bool(text.partition(ANSWER_END)[2].strip())
                try:
                    score = score_sample(self.task.verify, p, text, c.episode)
                except VerifierError:  # no verdict (the sanity check above says which verifier and why)
                    score, out.verifier_errors = None, out.verifier_errors + 1
                correct += bool(score is not None and score.correct)
                out.formatted += bool(score is not None and score.formatted)
                out.truncated += c.finish_reason == "length"
                out.tokens += len(c.token_ids)
                out.samples += 1
                if c.episode is not None:
                    out.tool_calls = (out.tool_calls or 0) + bool(c.episode.calls)
            out.counts.append(correct)


def kind_summary(problems: list[Problem], main: Sampled, greedy: Sampled, group_size: int) -> dict:
    """Per kind of problem (`meta["kind"]`, e.g. reasoning-gym's difficulty values): problems, pass@1, pass@G, the
    informative share of groups of G and greedy accuracy. A kind that no sample solved gives no signal, and a
    short run rarely moves it: a run's gains come from the other kinds. {} when the problems name no kind."""
    rows: dict[str, list[int]] = {}
    for i, p in enumerate(problems[: len(main.counts)]):
        kind = p.meta.get("kind") if isinstance(p.meta, dict) else None
        if kind is not None:
            rows.setdefault(kind, []).append(i)
    out = {}
    for kind, idx in sorted(rows.items()):
        sampled = Sampled(main.temperature, main.n, counts=[main.counts[i] for i in idx]).summary(group_size)
        row = {"problems": len(idx), **{k: sampled[k] for k in ("pass@1", f"pass@{group_size}", "informative_share")
                                        if k in sampled}}
        if len(greedy.counts) == len(main.counts):
            row["greedy"] = Sampled(0.0, 1, counts=[greedy.counts[i] for i in idx]).summary(1)["pass@1"]
        out[kind] = row
    return out


def lower_temperatures(temperature: float, asked: list[float]) -> list[float]:
    """The configured lower temperatures that are below the rollout temperature, highest first."""
    return sorted({t for t in asked if 0 < t < temperature}, reverse=True)


def measure(cfg, engine, tokenizer, task: Task, num_problems: int, budget_s: float | None,
            seed: int) -> dict:
    """The check's numbers (see the module docstring) as a JSON-ready dict. With `budget_s`, problems are
    measured in chunks while time remains (the rollout temperature first, then greedy, then lower ones) and
    `stopped_early` says what was cut."""
    t_start = time.time()
    G, B = cfg.rollout.num_generations, cfg.train.prompts_per_step
    problems = check_problems(task, num_problems, seed)
    sanity = verifier_sanity(task, problems)
    sampler = Sampler(engine, tokenizer, task, cfg, seed)

    def left() -> float:
        return float("inf") if budget_s is None else budget_s - (time.time() - t_start)

    main = Sampled(cfg.rollout.temperature, G)
    measured: list[Problem] = []
    for start in range(0, len(problems), CHUNK):
        if measured and left() < (main.seconds / len(measured)) * CHUNK * 1.5 + 1.0:
            break  # keep time for greedy
        chunk = problems[start : start + CHUNK]
        sampler.run(chunk, start, main)
        measured += chunk
    greedy = Sampled(0.0, 1)
    lower = [Sampled(t, G) for t in lower_temperatures(cfg.rollout.temperature, cfg.check.temperatures)]
    skipped = []
    for extra in [greedy, *lower]:
        cost = main.seconds * (extra.n / G)
        if left() < cost:
            skipped.append(extra.temperature)
            continue
        for start in range(0, len(measured), CHUNK):
            sampler.run(measured[start : start + CHUNK], start, extra)
    at_t = main.summary(G)
    share = at_t.get("informative_share")
    rates = [c / G for c in main.counts]
    # larger groups from the plug-in rates c/G (biased low with G samples); G itself from the unbiased estimate
    by_g = {str(g): informative_share(rates, g) for g in (2 * G, 4 * G)}
    by_g = {str(G): share, **by_g} if share is not None else by_g
    per_sample = at_t["seconds_per_sample"]
    by_kind = kind_summary(measured, main, greedy, G)
    report = {
        "task": task.name,
        "model": cfg.model.path or cfg.model.kind,
        "dtype": cfg.model.dtype,
        "temperature": cfg.rollout.temperature,
        "num_generations": G,
        "prompts_per_step": B,
        "problems": len(measured),
        "problems_asked": num_problems,
        "stopped_early": len(measured) < num_problems or bool(skipped),
        "skipped_temperatures": skipped,
        "at_temperature": at_t,
        "greedy_accuracy": greedy.summary(1)["pass@1"] if greedy.counts else None,
        "greedy": greedy.summary(1) if greedy.counts else None,
        "lower_temperatures": [s.summary(G) for s in lower if s.counts],
        "informative_share": share,
        "informative_groups_per_step": share * B if share is not None else None,
        "informative_share_interval": at_t.get("informative_share_interval"),  # 90%, over the problems measured
        "informative_share_by_group_size": by_g,
        # with screening: the share of candidates whose screen of k samples is mixed (what reaches the batch)
        "screen_pass_share": informative_share_from_counts(G, main.counts, cfg.algorithm.screen_samples)
        if main.counts and cfg.algorithm.screening and cfg.algorithm.screen_samples <= G else None,
        "pass_rates": rates,
        "by_kind": by_kind,
        # the share task.kind_sampling would reach, drawing each kind by its measured share (rlvr.tasks.kinds)
        "kind_sampled_share": kind_sampled_share(
            {k: (r["problems"], r["informative_share"]) for k, r in by_kind.items()
             if r.get("informative_share") is not None}, cfg.task.kind_floor) if len(by_kind) > 1 else None,
        "projection": {
            "generate_s_per_step": per_sample * B * G if per_sample else None,
            "generate_s_per_run": per_sample * B * G * cfg.train.steps if per_sample else None,
            "note": "generation only, at the check's batch size; the update adds to it",
        },
        "verifier": sanity,
        "seconds": time.time() - t_start,
    }
    from rlvr.check_advice import advise

    report["advice"], report["warnings"], report["overrides"] = advise(report, cfg)
    return report
