"""Held-out evaluation: unbiased pass@k, and accuracy / format rate / pass@k / maj@k read off scripted samples."""

from __future__ import annotations

import pytest

from rlvr.evaluate import evaluate, pass_at_k
from rlvr.rollout.base import Completion
from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.countdown import CountdownTask


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 1, 0.4),
        (5, 2, 2, 0.7),
        (5, 0, 1, 0.0),
        (5, 0, 5, 0.0),
        (5, 4, 2, 1.0),
        (5, 5, 1, 1.0),
        (10, 3, 1, 0.3),
        (10, 3, 5, 1 - 21 / 252),
    ],
)
def test_pass_at_k_by_hand(n, c, k, expected):
    # 1 - C(n-c, k) / C(n, k): e.g. n=5, c=2, k=2 -> 1 - C(3,2)/C(5,2) = 1 - 3/10.
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_needs_k_samples():
    with pytest.raises(ValueError, match="at least 3 samples"):
        pass_at_k(2, 1, 3)


class ScriptedEngine:
    """An engine that answers with fixed texts: `greedy[prompt]` at temperature 0, `sampled[prompt]` else."""

    def __init__(self, tokenizer, greedy: dict[str, str], sampled: dict[str, list[str]]):
        self.tok, self.greedy, self.sampled = tokenizer, greedy, sampled

    def _completion(self, text: str) -> Completion:
        ids = self.tok(text, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]
        return Completion(ids, [0.0] * len(ids), "stop")

    def generate(self, prompts, sampling, generator=None):
        out = []
        for ids in prompts:
            prompt = self.tok.decode(ids[1:])  # drop BOS
            texts = [self.greedy[prompt]] if sampling.temperature == 0 else self.sampled[prompt]
            assert len(texts) == sampling.n
            out.append([self._completion(t) for t in texts])
        return out


def _answer(value, think: bool = True) -> str:
    return f"<think>work</think><answer>{value}</answer>" if think else f"<answer>{value}</answer>"


@pytest.mark.parametrize("batch_size", [256, 1])
def test_evaluate_on_scripted_samples(char_tokenizer, batch_size):
    task = ArithmeticTask(difficulty=2, eval_size=2)
    p1, p2 = task.eval_problems(2)
    a1, a2 = p1.answer, p2.answer
    greedy = {p1.prompt: _answer(a1), p2.prompt: _answer(a2 + 1, think=False)}  # right; wrong and unformatted
    sampled = {
        p1.prompt: [
            _answer(a1),
            _answer(a1),
            _answer(a1 + 1),
            _answer(a1 + 1),
            _answer(a1 + 1),
        ],  # c=2, vote wrong
        p2.prompt: [
            _answer(a2),
            _answer(a2),
            _answer(a2),
            _answer(a2 + 1),
            _answer(a2 + 2),
        ],  # c=3, vote right
    }
    engine = ScriptedEngine(char_tokenizer, greedy, sampled)

    def encode(p):
        return [char_tokenizer.bos_token_id] + char_tokenizer(p.prompt, add_special_tokens=False)["input_ids"]

    result = evaluate(
        engine,
        char_tokenizer,
        task,
        [p1, p2],
        encode,
        max_new_tokens=16,
        stop_ids=(2,),
        samples=5,
        pass_k=[1, 2],
        batch_size=batch_size,
        keep=1,
    )
    assert result["n"] == 2
    assert result["accuracy"] == 0.5
    assert result["format_rate"] == 0.5  # EOS is stripped before the format check
    assert result["pass@1"] == pytest.approx((0.4 + 0.6) / 2)
    assert result["pass@2"] == pytest.approx((0.7 + 0.9) / 2)
    assert result["maj@5"] == 0.5
    assert result["by_task"]["arithmetic"]["accuracy"] == 0.5
    assert result["examples"] == [
        {
            "id": p1.id,
            "task": "arithmetic",
            "prompt": p1.prompt,
            "completion": _answer(a1),
            "correct": True,
            "reward": pytest.approx(1.1),
        }
    ]


def test_evaluate_greedy_only_has_no_pass_at_k(char_tokenizer):
    task = ArithmeticTask(difficulty=2, eval_size=1)
    (p,) = task.eval_problems(1)
    engine = ScriptedEngine(char_tokenizer, {p.prompt: _answer(p.answer)}, {})
    result = evaluate(
        engine,
        char_tokenizer,
        task,
        [p],
        lambda q: [1] + char_tokenizer(q.prompt, add_special_tokens=False)["input_ids"],
        16,
        (2,),
    )
    assert result["accuracy"] == 1.0 and result["format_rate"] == 1.0
    assert not any(k.startswith(("pass@", "maj@")) for k in result)


def test_majority_vote_counts_equivalent_right_answers_together(char_tokenizer):
    task = CountdownTask(difficulty=3, eval_size=1)
    (p,) = task.eval_problems(1)
    a, op, b, _ = p.meta["chain"][0]
    right = _answer(task.solve(p, flawed=False).split("<answer>")[1].split("</answer>")[0])
    texts = [
        right,
        right.replace("<answer>", "<answer>(").replace("</answer>", ")</answer>"),
        right.replace("<answer>", "<answer>((").replace("</answer>", "))</answer>"),
        _answer(a),
        _answer(a),
    ]
    engine = ScriptedEngine(char_tokenizer, {p.prompt: texts[0]}, {p.prompt: texts})

    def encode(q):
        return [char_tokenizer.bos_token_id] + char_tokenizer(q.prompt, add_special_tokens=False)["input_ids"]

    result = evaluate(engine, char_tokenizer, task, [p], encode, 16, (2,), samples=5, pass_k=[1])
    assert result["pass@1"] == pytest.approx(0.6)  # 3 of 5 reach the target
    assert result["maj@5"] == 1.0


def _raising_on(task, bad, error: Exception):
    """`task.verify` that raises `error` on problem `bad` and scores the others as before."""
    verify = task.verify

    def verify_or_raise(problem, text):
        if problem.id == bad.id:
            raise error
        return verify(problem, text)

    return verify_or_raise


def test_a_problem_the_sandbox_cannot_score_is_left_out_and_counted_not_wrong(char_tokenizer):
    from rlvr.verifiers import InfraError

    task = ArithmeticTask(difficulty=2, eval_size=2)
    p1, p2 = task.eval_problems(2)
    task.verify = _raising_on(task, p2, InfraError("injected: the run never started"))
    engine = ScriptedEngine(char_tokenizer, {p1.prompt: _answer(p1.answer), p2.prompt: _answer(p2.answer)}, {})
    result = evaluate(engine, char_tokenizer, task, [p1, p2],
                      lambda q: [1] + char_tokenizer(q.prompt, add_special_tokens=False)["input_ids"], 16, (2,))
    assert result["infra_skipped"] == 1
    assert result["n"] == 1 and result["accuracy"] == 1.0  # p2 counted neither right nor wrong


@pytest.mark.parametrize("samples", [0, 3])
def test_a_problem_the_verifier_fails_on_is_left_out_and_counted_not_wrong(char_tokenizer, samples):
    task = ArithmeticTask(difficulty=2, eval_size=2)
    p1, p2 = task.eval_problems(2)
    task.verify = _raising_on(task, p2, KeyError("answer"))
    engine = ScriptedEngine(char_tokenizer, {p.prompt: _answer(p.answer) for p in (p1, p2)},
                            {p.prompt: [_answer(p.answer)] * samples for p in (p1, p2)})
    result = evaluate(engine, char_tokenizer, task, [p1, p2],
                      lambda q: [1] + char_tokenizer(q.prompt, add_special_tokens=False)["input_ids"], 16, (2,),
                      samples=samples)
    assert result["verifier_skipped"] == 1 and "infra_skipped" not in result
    assert "verify_or_raise" in result["verifier_error"] and "KeyError" in result["verifier_error"]
    assert result["n"] == 1 and result["accuracy"] == 1.0  # p2 counted neither right nor wrong


def test_a_story_s_measure_reads_each_answer_with_its_own_problem_when_one_is_left_out(char_tokenizer):
    """`evaluate_story` hands the story's measure the answers of the problems that were scored; a problem
    the sandbox could not score has no answer, so the measure must not pair the rest with the wrong problems."""
    from rlvr.stories.measures import evaluate_story
    from rlvr.verifiers import InfraError

    task = ArithmeticTask(difficulty=2, eval_size=3)
    problems = task.eval_problems(3)
    verify = task.verify

    def flaky(problem, text):
        if problem.id == problems[0].id:
            raise InfraError("injected: the run never started")
        return verify(problem, text)

    task.verify = flaky
    engine = ScriptedEngine(char_tokenizer, {p.prompt: _answer(p.answer) for p in problems}, {})
    seen = []

    def measure(ps, texts):
        seen.extend(zip(ps, texts))
        return {"right_pairs": sum(str(p.answer) in t for p, t in zip(ps, texts))}

    row, answers = evaluate_story(engine, char_tokenizer, task, problems,
                                  lambda q: [1] + char_tokenizer(q.prompt, add_special_tokens=False)["input_ids"],
                                  16, (2,), None, measure)
    assert row["infra_skipped"] == 1 and len(seen) == 2
    assert [p.id for p, _ in seen] == [p.id for p in problems[1:]] and row["right_pairs"] == 2


def test_held_out_accuracy_is_also_given_per_kind_of_problem(char_tokenizer):
    """Problems that name their kind (meta["kind"]) are counted per kind too: greedy accuracy, count, pass@k;
    a problem without one is in the totals only."""
    task = ArithmeticTask(difficulty=2, eval_size=4)
    problems = task.eval_problems(4)
    for p, kind in zip(problems, ["easy", "hard", "easy", None]):
        if kind:
            p.meta["kind"] = kind
    right = [True, False, False, True]  # easy: 1 of 2, hard: 0 of 1
    greedy = {p.prompt: _answer(p.answer if ok else p.answer + 1) for p, ok in zip(problems, right)}
    sampled = {p.prompt: [_answer(p.answer), _answer(p.answer + 1)] if i == 1 else [_answer(p.answer + 1)] * 2
               for i, p in enumerate(problems)}  # the hard one is solved by 1 of 2 samples
    result = evaluate(ScriptedEngine(char_tokenizer, greedy, sampled), char_tokenizer, task, problems,
                      lambda q: [1] + char_tokenizer(q.prompt, add_special_tokens=False)["input_ids"], 16, (2,),
                      samples=2, pass_k=[1, 2])
    assert result["accuracy"] == 0.5 and result["n"] == 4
    assert result["by_kind"] == {"easy": {"accuracy": 0.5, "n": 2, "pass@1": 0.0, "pass@2": 0.0},
                                 "hard": {"accuracy": 0.0, "n": 1, "pass@1": 0.5, "pass@2": 1.0}}


def test_sampled_rows_per_batch_are_capped_and_the_result_is_the_same(char_tokenizer):
    """With samples, at most `max_rows` rows are generated at once (each holds its own KV cache): 5 problems x 2
    samples with max_rows=4 run as chunks of 2 problems, and every number equals the one-batch evaluation."""
    task = ArithmeticTask(difficulty=2, eval_size=5)
    problems = task.eval_problems(5)
    greedy = {p.prompt: _answer(p.answer if i % 2 else p.answer + 1) for i, p in enumerate(problems)}
    sampled = {p.prompt: [_answer(p.answer), _answer(p.answer + i)] for i, p in enumerate(problems)}
    rows = []

    class Recording(ScriptedEngine):
        def generate(self, prompts, sampling, generator=None):
            rows.append(len(prompts) * sampling.n)
            return super().generate(prompts, sampling, generator)

    def run(**kw):
        return evaluate(Recording(char_tokenizer, greedy, sampled), char_tokenizer, task, problems,
                        lambda q: [1] + char_tokenizer(q.prompt, add_special_tokens=False)["input_ids"], 16, (2,),
                        samples=2, pass_k=[1, 2], **kw)

    capped = run(max_rows=4)
    assert rows == [2, 4, 2, 4, 1, 2]  # greedy then sampled, per chunk of 2, 2, 1 problems
    rows.clear()
    assert run() == capped and rows == [5, 10]
    assert capped["accuracy"] == 0.4 and capped["pass@1"] == pytest.approx(0.6)
