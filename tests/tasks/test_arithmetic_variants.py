"""The stories' arithmetic variants keep the chef's problems and change only the teacher, prompt or reward."""

import random

from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.arithmetic_variants import (
    TAG_HINT,
    GradedArithmeticTask,
    PlainArithmeticTask,
    TwoKindsArithmeticTask,
)
from rlvr.verifiers.steps import shows_steps


def test_variants_draw_the_chef_problems():
    base = ArithmeticTask(eval_size=20)
    for cls in (TwoKindsArithmeticTask, GradedArithmeticTask, PlainArithmeticTask):
        other = cls(eval_size=20)
        assert [p.meta["key"] for p in other.eval_problems()] == [p.meta["key"] for p in base.eval_problems()]
        assert other.train_problem(7).answer == base.train_problem(7).answer


def test_two_kinds_teacher_mixes_short_and_worked_solutions():
    task = TwoKindsArithmeticTask(flaw_rate=0.1, short_share=0.7, short_slip=0.6)
    rng = random.Random(0)
    sols = [(task.train_problem(i), *task.worked_solution(task.train_problem(i), rng)) for i in range(2000)]
    worked = [s for s in sols if shows_steps(s[1])]
    short = [s for s in sols if not shows_steps(s[1])]
    assert 0.25 < len(worked) / len(sols) < 0.35
    assert sum(ok for _, _, ok in worked) / len(worked) > 0.85  # long: mostly right
    hard = [s for s in short if task.needs_carry(s[0])]
    assert 0.3 < sum(ok for _, _, ok in hard) / len(hard) < 0.5  # short on carries: usually wrong
    assert all(ok for p, _, ok in short if not task.needs_carry(p))


def test_plain_text_has_no_tags_and_the_prompt_shows_them():
    task = PlainArithmeticTask()
    p = task.train_problem(0)
    text, ok = task.plain_text(p, random.Random(0))
    assert p.prompt == TAG_HINT + p.meta["key"] + "="
    assert text.startswith(p.meta["key"] + "=") and "<" not in text
    assert ok == (text == f"{p.meta['key']}={p.answer}")
