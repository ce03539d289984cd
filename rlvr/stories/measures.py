"""What every story measures on held-out answers (greedy), beyond accuracy and format rate.

- `length`: mean tokens the model wrote per answer (the primed reply prefix not counted, end token not counted);
- `steps_share`: share of answers that show worked steps (`verifiers/steps.py`: at least one step-format item
  inside `<think>`);
- `readability`: share of reasoning items that are valid steps (None when no answer has reasoning), with the
  counts `valid_steps` and `reasoning_items` it comes from;
- whatever the story's `measure(problems, texts)` adds (the hacking story's graded reward and hack rate).
"""

from __future__ import annotations

from rlvr.evaluate import evaluate
from rlvr.verifiers.arithmetic import verify_integer
from rlvr.verifiers.graded import verify_graded
from rlvr.verifiers.steps import readability, shows_steps


def evaluate_story(engine, tokenizer, task, problems, encode, max_new_tokens: int, stop_ids, prefix: str | None,
                   measure=None) -> tuple[dict, list[dict]]:
    """Greedy answers to `problems` -> (row of scalars for eval.jsonl, the answers in problem order)."""
    result = evaluate(engine, tokenizer, task, problems, encode, max_new_tokens, stop_ids, keep=len(problems),
                      prefix=prefix)
    answers = result.pop("examples")
    result.pop("by_task", None)
    texts = [a["completion"] for a in answers]
    skip = len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) - skip for t in texts]
    read, valid, items = readability(texts)
    row = {
        **result,
        "length": sum(lengths) / max(len(lengths), 1),
        "steps_share": sum(map(shows_steps, texts)) / max(len(texts), 1),
        "readability": read,
        "valid_steps": valid,
        "reasoning_items": items,
    }
    if measure is not None:  # the answers' own problems: a problem left unscored has no answer here
        by_id = {p.id: p for p in problems}
        row.update(measure([by_id[a["id"]] for a in answers], texts))
    for a, n in zip(answers, lengths):
        a["length"] = n
    return row, answers


def reward_hacking_measure(format_reward: float):
    """The hacking story's measure: mean binary and graded reward of the answers, and how often the graded
    reward pays a wrong answer: `hack_rate` (some digit credit while wrong by the binary verifier) and
    `full_credit_wrong_rate` (all the credit a right answer gets, while wrong)."""

    def measure(problems, texts) -> dict:
        n = max(len(texts), 1)
        binary = [verify_integer(p, t, format_reward=format_reward) for p, t in zip(problems, texts)]
        graded = [verify_graded(p, t, format_reward=format_reward) for p, t in zip(problems, texts)]
        return {
            "binary_reward": sum(s.reward for s in binary) / n,
            "graded_reward": sum(s.reward for s in graded) / n,
            "hack_rate": sum(g.details["credit"] > 0 and not g.correct for g in graded) / n,
            "full_credit_wrong_rate": sum(g.details["credit"] == 1.0 and not g.correct for g in graded) / n,
        }

    return measure
